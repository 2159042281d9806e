import ArgumentParser
import InQubeTool
import Shards

/// Where attach and detach act; defaults are dom0's, each can be changed (tests use stand-ins).
struct LifecycleOptions: ParsableArguments {
    @Option(name: .customLong("runtime-dir"), help: "The runtime folder holding shards.json (tmpfs).")
    var runtimeFolder = "/run/lq"
    @Option(name: .customLong("runtime-policy-dir"), help: "Where the isolation policy is installed.")
    var policyFolder = "/run/qubes/policy.d"
    @Option(help: "qubesd's Admin API socket.") var socket = "/var/run/qubesd.sock"
    @Option(help: "The systemctl program.") var systemctl = "/usr/bin/systemctl"
    @Option(name: .customLong("dropin-dir"), help: "The runtime drop-in folder of qubesd.service.")
    var dropInFolder = "/run/systemd/system/qubesd.service.d"
    @Option(help: "Seconds to wait for qubesd's socket and for qubes to halt.") var timeout = 120.0
    @Flag(help: "At boot or shutdown (the units): qubesd is down, so only have it read the right store when it starts.")
    var boot = false

    var settings: LifecycleSettings {
        LifecycleSettings(
            paths: LifecyclePaths(runtimeFolder: runtimeFolder, policyFolder: policyFolder, socket: socket),
            qubesd: SystemdQubesd(systemctl: systemctl, dropInFolder: dropInFolder), timeout: timeout, boot: boot)
    }

    /// Prints the report: steps, warnings, what split and merge did, the audit's findings; exit 1 on a finding.
    static func conclude(_ report: LifecycleReport, dryRun: Bool) throws {
        Terminal.write(report.steps.map { (dryRun ? "would " : "done: ") + $0 + "\n" }.joined())
        for warning in report.warnings { Terminal.error("warning: \(warning)") }
        Terminal.write(report.shutDown.map { "shut down: \($0)\n" }.joined())
        for shard in report.merge?.shards ?? [] {
            Terminal.write("shard \(shard.name ?? "?"): \(shard.merged.count) merged\n")
            Terminal.write(ShardIO.lines("skipped", shard.skipped) + ShardIO.lines("withheld", shard.changes)
                + ShardIO.lines("recovered (prohibit-start set)", shard.recoveries))
        }
        if let audit = report.audit {
            try ShardIO.conclude(audit.findings, json: nil, prefix: "finding: left after detach: ")
        }
    }

    /// Runs `body`; a `LifecycleError` becomes its message and exit status 1.
    static func run<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as LifecycleError {
            Terminal.error("error: \(error)")
            throw ExitCode(1)
        }
    }
}

extension ShardCommand {
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "attach",
            abstract: "Attach shard folders on a running dom0: stop qubesd, split, merge, install the policy, start qubesd.",
            discussion: """
                Refused while a qube of an already-attached shard runs. Any failure restores the previous merged store, \
                policy and record and starts qubesd on them again. The attached folders and options are recorded in \
                <runtime-dir>/shards.json for split, detach and the boot units.
                """)

        @Argument(help: "Shard folders.") var folders: [String] = []
        @Option(name: .customLong("volume-list"), help: "A list of shard folders (shell patterns, one a line): attach those present.")
        var volumeList: String?
        @Option(help: "The main store (default: recorded, else /var/lib/qubes/qubes.xml).") var main: String?
        @Option(help: "The merged store qubesd reads (default: recorded, else <runtime-dir>/qubes.xml).") var merged: String?
        @OptionGroup var policy: ShardPolicyOptions
        @OptionGroup var lifecycle: LifecycleOptions
        @Flag(help: "Print the steps without doing them.") var dryRun = false

        func validate() throws {
            guard !folders.isEmpty || volumeList != nil else { throw ValidationError("give shard folders or --volume-list") }
        }

        func run() throws {
            try LifecycleOptions.run {
                let options = ShardOptions(
                    qidRange: policy.qidRange.range, allowDevices: policy.allowDevices, allowTags: policy.allowTags,
                    policyFolders: policy.policyDirectories)
                let report = try ShardLifecycle.attach(
                    folders, main: main, merged: merged, options: options, volumeList: volumeList, dryRun: dryRun,
                    settings: lifecycle.settings)
                try LifecycleOptions.conclude(report, dryRun: dryRun)
            }
        }
    }

    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "detach",
            abstract: "Detach attached shards: split their qubes home, merge the rest, remove their policy, audit.",
            discussion: "Refused while a qube of those shards runs, unless --shutdown. Exit 1 when the audit finds a trace.")

        @Argument(help: "Names of attached shards.") var names: [String] = []
        @Flag(help: "Detach every attached shard.") var all = false
        @Flag(help: "Shut the running qubes of those shards down first.") var shutdown = false
        @OptionGroup var lifecycle: LifecycleOptions
        @Flag(help: "Print the steps without doing them.") var dryRun = false

        func validate() throws {
            guard all != !names.isEmpty else { throw ValidationError("give shard names or --all, not both") }
        }

        func run() throws {
            try LifecycleOptions.run {
                let report = try ShardLifecycle.detach(
                    all ? nil : names, shutDown: shutdown, dryRun: dryRun, settings: lifecycle.settings)
                try LifecycleOptions.conclude(report, dryRun: dryRun)
            }
        }
    }
}
