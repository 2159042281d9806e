import ArgumentParser
import InQubeTool
import LQCommon
import QrexecPolicy
import QubesStore
import Shards
import SystemLayer

/// `lq shard …`: merge shards into the store qubesd loads and split them out again.
struct ShardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Merge and split shards: portable, deniable qubes kept outside the main qubes.xml.",
        discussion: "Exit status: 0 success, 1 a finding or a failure (message on stderr), 2 usage errors.",
        subcommands: [Merge.self, Split.self, Check.self, Audit.self, Rename.self, Attach.self, Detach.self,
                      InstallUnits.self, UninstallUnits.self, CreateSnapshotCommand.self, InstallCreateSnapshot.self,
                      Export.self, Import.self]
    )
}

/// A qid range written `A..B`.
struct QIDRange: ExpressibleByArgument {
    var range: ClosedRange<Int>

    init(_ range: ClosedRange<Int>) { self.range = range }

    init?(argument: String) {
        let parts = argument.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].isEmpty, let low = Int(parts[0]), let high = Int(parts[2]), 1 <= low, low <= high,
            high < 10000
        else { return nil }
        range = low...high
    }

    var defaultValueDescription: String { "\(range.lowerBound)..\(range.upperBound)" }
}

/// The options every shard command that sanitizes shares.
struct ShardPolicyOptions: ParsableArguments {
    @Option(name: .customLong("policy-dir"),
            help: "A qrexec policy folder read to find tags that grant rights; repeat it (default: /run/qubes/policy.d and /etc/qubes/policy.d).")
    var policyDirectories: [String] = []
    @Option(name: .customLong("allow-devices"), help: "Keep the device assignments of this shard; repeat it.")
    var allowDevices: [String] = []
    @Option(name: .customLong("allow-tags"), help: "Apply this tag even if the policy grants rights to it; repeat it.")
    var allowTags: [String] = []
    @Option(name: .customLong("qid-range"), help: "The qids of shard qubes, A..B, below 10000.")
    var qidRange = QIDRange(shardQIDRange)

    /// The sanitizing options, with the tags the policy grants rights to (policy errors printed).
    func sanitize() -> SanitizeOptions {
        let load = PolicyLoader(directories: policyDirectories.isEmpty ? PolicyLoader.defaultDirectories : policyDirectories).load()
        for error in load.errors { Terminal.error("warning: policy: \(error)") }
        return SanitizeOptions(
            allowDevices: Set(allowDevices), allowTags: Set(allowTags), grantingTags: SanitizeOptions.grantingTags(of: load.policy))
    }
}

/// Reading inputs and printing reports for the shard commands.
enum ShardIO {
    static func readShards(_ roots: [String]) -> [ShardSource] { roots.map { ShardFolder(root: $0).read() } }

    /// The shards that could be read; the others are printed and make `failed` true.
    static func readable(_ sources: [ShardSource], failed: inout Bool) -> [Shard] {
        sources.compactMap { source in
            switch source.shard {
            case .success(let shard): return shard
            case .failure(let issue):
                Terminal.error("error: \(issue)")
                failed = true
                return nil
            }
        }
    }

    static func lines(_ title: String, _ items: [some CustomStringConvertible]) -> String {
        items.map { "  \(title): \($0)\n" }.joined()
    }

    static func printJSON(_ value: JSONValue) { Terminal.write(value.canonicalBytes()) }

    /// Prints `json` when given, else each finding on stderr; exit 1 when
    /// there is any finding or `failed`.
    static func conclude(_ findings: [ShardIssue], json: JSONValue?, prefix: String = "", failed: Bool = false) throws {
        if let json {
            printJSON(json)
        } else {
            for finding in findings { Terminal.error(prefix + finding.description) }
        }
        if failed || !findings.isEmpty { throw ExitCode(1) }
    }

    /// Runs `body`; a library error becomes a message and exit status 1.
    static func run(_ body: () throws -> Void) throws { try Tool.failing("error: ", body) }
}

extension ShardCommand {
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge", abstract: "Merge the main store and shards into the store qubesd loads.",
            discussion: """
                Shards are untrusted: what breaks a rule is skipped or withheld and reported (per shard: qubes merged, \
                qubes skipped, every sanitizing change, every recovery). The merged store is written atomically.
                """)

        @Option(help: "The main store (qubes.xml).") var main: String
        @Option(name: .customLong("shard"), help: "A shard folder; repeat it.") var shards: [String] = []
        @Option(name: .shortAndLong, help: "Where to write the merged store.") var output: String
        @OptionGroup var policy: ShardPolicyOptions
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            try ShardIO.run {
                let mainBytes = try StoreInput.read(main)
                let options = MergeOptions(qidRange: policy.qidRange.range, sanitize: policy.sanitize())
                let roots = shards
                let result: MergeResult
                do {
                    result = try ShardMerge.merge(mainBytes: mainBytes, shards: { ShardIO.readShards(roots) }, options: options)
                } catch let error as StoreError {
                    throw StoreInput.fail(error.inFile(main))
                }
                try StoreFile(path: output).replace(with: result.bytes, expecting: nil)
                if json { return ShardIO.printJSON(result.report.json) }
                var text = ""
                for shard in result.report.shards {
                    text += "shard \(shard.name ?? "?") (\(shard.root)): "
                    if let error = shard.error {
                        text += "skipped: \(error)\n"
                        continue
                    }
                    text += "\(shard.merged.count) merged: \(shard.merged.joined(separator: ", "))\n"
                    text += ShardIO.lines("ignored", shard.notices) + ShardIO.lines("skipped", shard.skipped)
                    text += ShardIO.lines("pool refused", shard.refusedPools) + ShardIO.lines("withheld", shard.changes)
                    text += ShardIO.lines("recovered (prohibit-start set)", shard.recoveries)
                }
                text += ShardIO.lines("main store", result.report.mainQIDsInRange)
                Terminal.write(text)
            }
        }
    }

    struct Split: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "split", abstract: "Split the merged store back into the main store and every shard file.",
            discussion: """
                Each file is written atomically; the previous shard file is kept as domains.xml.prev. Main-store \
                references to shard qubes are reset and reported. Give the main store merge started from (unchanged \
                while attached), the same --shard folders in the same order, and the options merge was given: split \
                replays merge to tell a qube merge left out (kept) from one removed while attached (dropped). \
                With none of --merged, --main and --shard, split what lq shard attach recorded in \
                <runtime-dir>/shards.json, with its options; refused while qubesd answers on --socket.
                """)

        @Option(help: "The merged store, as qubesd saved it.") var merged: String?
        @Option(help: "The main store to write.") var main: String?
        @Option(name: .customLong("shard"), help: "A shard folder; repeat it.") var shards: [String] = []
        @OptionGroup var policy: ShardPolicyOptions
        @Option(name: .customLong("runtime-dir"), help: "The runtime folder holding shards.json (tmpfs).")
        var runtimeFolder = "/run/lq"
        @Option(help: "qubesd's Admin API socket.") var socket = "/var/run/qubesd.sock"
        @Flag(help: "Print the report as JSON.") var json = false

        func validate() throws {
            if (merged == nil) != (main == nil) || (merged == nil && !shards.isEmpty) {
                throw ValidationError("Give --merged and --main (and the --shard folders), or none of them to split what is attached.")
            }
        }

        func run() throws {
            try ShardIO.run {
                guard let merged, let main else { return try Self.conclude(attachedReport(), json: json) }
                let mergedBytes = try StoreInput.read(merged)
                let previous = try StoreInput.load(main).store
                let options = MergeOptions(qidRange: policy.qidRange.range, sanitize: policy.sanitize())
                var result: SplitResult
                do {
                    result = try ShardSplit.split(
                        mergedBytes: mergedBytes, previousMain: previous, shards: ShardIO.readShards(shards), options: options)
                } catch let error as StoreError {
                    throw StoreInput.fail(error.inFile(merged))
                }
                result.report.written = try ShardSplit.write(result, main: StoreFile(path: main))
                try Self.conclude(result.report, json: json)
            }
        }

        /// Splits what the runtime record says is attached.
        private func attachedReport() throws -> SplitReport {
            let settings = LifecycleSettings(paths: LifecyclePaths(runtimeFolder: runtimeFolder, socket: socket))
            let (report, warnings) = try LifecycleOptions.run { try ShardLifecycle.splitAttached(settings: settings) }
            for warning in warnings { Terminal.error("warning: \(warning)") }
            return report
        }

        /// Prints the report; exit 1 when a shard was not read.
        private static func conclude(_ report: SplitReport, json: Bool) throws {
            if json { return ShardIO.printJSON(report.json) }
            var text = report.moved.map { "moved: \($0.qube) -> \($0.field)\n" }.joined()
            text += ShardIO.lines("reset in main store", report.resets)
            text += ShardIO.lines("kept unchanged", report.kept) + ShardIO.lines("removed", report.removed)
            text += ShardIO.lines("shard not read", report.errors)
            text += report.written.map { "written: \($0)\n" }.joined()
            Terminal.write(text)
            if !report.errors.isEmpty { throw ExitCode(1) }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check", abstract: "Check shard folders without merging: what merge would refuse or change.",
            discussion: "Exit status 1 when anything is found.")

        @Argument(help: "Shard folders.") var folders: [String]
        @OptionGroup var policy: ShardPolicyOptions
        @Flag(help: "Print the findings as JSON.") var json = false

        func run() throws {
            let options = policy.sanitize()
            var issues: [ShardIssue] = []
            for source in ShardIO.readShards(folders) {
                switch source.shard {
                case .success(let shard): issues += ShardCheck.check(shard, options: options)
                case .failure(let issue): issues.append(issue)
                }
            }
            try ShardIO.conclude(issues, json: json ? .array(issues.map(\.json)) : nil)
        }
    }

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "audit", abstract: "Audit dom0 for traces of shards (names, uuids, pools, paths, shard qids).",
            discussion: "Exit status 1 on any finding; qid gaps are information only.")

        @Option(help: "The main store (qubes.xml).") var main: String
        @Option(name: .customLong("shard"), help: "A known shard folder; repeat it.") var shards: [String] = []
        @Option(name: .customLong("scan"), help: "A folder whose files are searched for traces (logs, policy); repeat it.")
        var scan: [String] = []
        @Option(name: .customLong("qid-range"), help: "The qids of shard qubes, A..B.") var qidRange = QIDRange(shardQIDRange)
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            try ShardIO.run {
                let bytes = try StoreInput.read(main)
                let store = try StoreInput.load(main).store
                var failed = false
                let known = ShardIO.readable(ShardIO.readShards(shards), failed: &failed)
                let (files, skipped) = try ShardFolder.scan(scan)
                let scanned = [(path: main, bytes: bytes)] + files
                var report = ShardAudit.audit(
                    main: store, mainPath: main, shards: known, scanned: scanned, qidRange: qidRange.range)
                report.information += skipped.map { "not scanned (larger than \(ShardFolder.maxScannedSize) bytes or unreadable): \($0)" }
                if !json { Terminal.write(report.information.map { "info: \($0)\n" }.joined()) }
                try ShardIO.conclude(report.findings, json: json ? report.json : nil, prefix: "finding: ", failed: failed)
            }
        }
    }

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rename", abstract: "Rename a qube inside a shard while it is not merged (references inside the shard follow).")

        @Argument(help: "The shard folder.") var folder: String
        @Argument(help: "The qube's name.") var old: String
        @Argument(help: "Its new name.") var new: String

        func run() throws {
            try ShardIO.run {
                let shard = try ShardFolder(root: folder).read().shard.get()
                let outputs = try ShardRename.rename(old, to: new, in: shard)
                for path in try ShardFolder.write(outputs) { Terminal.write("written: \(path)\n") }
            }
        }
    }
}
