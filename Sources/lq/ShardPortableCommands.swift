import ArgumentParser
import QubesStore
import Shards

extension ShardCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Write a shard into a new folder another machine can import: pools relative, volumes in a manifest.",
            discussion: """
                The folder gets one domains.xml whose pools keep their volumes in pools/<pool>, a copy of every file of \
                each pool's folder there, and manifest.json listing each with its size and sha256. Refused while the \
                shard is attached.
                """)

        @Argument(help: "The shard's name.") var name: String
        @Option(help: "The shard folder.") var from: String
        @Option(name: .shortAndLong, help: "The new folder to write.") var output: String
        @Option(name: .customLong("runtime-dir"), help: "The runtime folder holding shards.json.") var runtimeFolder = "/run/lq"
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            try ShardIO.run {
                if let record = try ShardLifecycle.record(LifecyclePaths(runtimeFolder: runtimeFolder)),
                    record.shards.contains(where: { $0.name == name })
                {
                    throw ShardIssue("the shard is attached: detach it first", file: record.merged, field: "name", value: name)
                }
                let report = try ShardPortable.export(name, from: from, to: output)
                if json { return ShardIO.printJSON(report.json) }
                Terminal.write("exported \(name) to \(report.root): \(report.manifest.volumes.count) volume files\n")
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import an exported shard, untrusted, as a new shard folder of this machine.",
            discussion: """
                The merge rules decide what the shard may have here (sanitizing, recovery with prohibit-start, name \
                conflicts; labels and templates by name): import reports what attaching it would withhold, recover \
                or skip, and refuses a shard merge would refuse whole. Every volume is checked against the manifest's \
                size and sha256; files it does not list are not copied. The main store is only read.
                """)

        @Argument(help: "The exported shard folder.") var folder: String
        @Option(name: .customLong("pool-dir"), help: "The new shard folder: its domains.xml, its pools below it.")
        var poolDirectory: String
        @Option(help: "The main store of this machine.") var main = "/var/lib/qubes/qubes.xml"
        @OptionGroup var policy: ShardPolicyOptions
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            try ShardIO.run {
                let store = try StoreInput.load(main).store
                let options = MergeOptions(qidRange: policy.qidRange.range, sanitize: policy.sanitize())
                let report = try ShardPortable.importShard(from: folder, to: poolDirectory, main: store, options: options)
                if json { return ShardIO.printJSON(report.json) }
                var text = "imported \(report.manifest.shard) to \(report.root): \(report.manifest.volumes.count) volume files\n"
                text += ShardIO.lines("not copied (not in the manifest)", report.ignored)
                if let merge = report.merge {
                    text += "attaching it here merges: \(merge.merged.joined(separator: ", "))\n"
                    text += ShardIO.lines("ignored", merge.notices) + ShardIO.lines("skipped", merge.skipped)
                    text += ShardIO.lines("pool refused", merge.refusedPools) + ShardIO.lines("withheld", merge.changes)
                    text += ShardIO.lines("recovered (prohibit-start set)", merge.recoveries)
                }
                Terminal.write(text)
            }
        }
    }
}
