import ArgumentParser
import InQubeTool
import Foundation
import LQCommon
import QubesAdmin
import QrexecPolicy
import QubesStore
import SystemLayer

/// `lq policy …`: evaluate, lint, tabulate and generate qrexec policy.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Evaluate, check and generate qrexec policy as dom0 reads it.",
        subcommands: [Eval.self, Lint.self, Matrix.self, Shards.self]
    )
}

/// Which policy to read: the directories and the legacy folder of `!compat-4.0`.
struct PolicyLocation: ParsableArguments {
    @Option(name: .customLong("policy-dir"),
            help: "A policy directory; repeat it, the first wins for files of the same name (default: /run/qubes/policy.d, then /etc/qubes/policy.d).")
    var directories: [String] = []
    @Option(name: .customLong("legacy-dir"), help: "The old-format folder that !compat-4.0 reads.")
    var legacyDirectory = PolicyLoader.defaultLegacyDirectory

    var loader: PolicyLoader {
        PolicyLoader(directories: directories.isEmpty ? PolicyLoader.defaultDirectories : directories,
                     legacyDirectory: legacyDirectory)
    }

    /// The policy, or the error that makes dom0 deny every call (each error printed).
    func load() -> Result<Policy, PolicyError> { policy(loader.load()) }

    /// The policy of `result`, or the error that makes dom0 deny every call (each error printed).
    func policy(_ result: PolicyLoad) -> Result<Policy, PolicyError> {
        for error in result.errors { Terminal.error("error: \(error)") }
        return result.errors.first.map { .failure($0) } ?? .success(result.policy)
    }
}

/// Where the qubes come from: qubesd's socket, a qubes.xml store or a GetSystemInfo JSON file.
struct SystemOptions: ParsableArguments {
    @OptionGroup var source: SystemSource
    @Option(name: .customLong("system-info"), help: "A JSON file in the form of qubesd's internal.GetSystemInfo.")
    var systemInfo: String?

    func validate() throws {
        guard [source.socket, source.store, systemInfo].compactMap({ $0 }).count == 1 else {
            throw ValidationError("Give exactly one of --socket, --store and --system-info.")
        }
    }

    var provider: any SystemInfoProvider {
        if let socket = source.socket { return SocketSystemInfo(path: socket) }
        if let store = source.store { return StoreSystemInfo(path: store) }
        return JSONSystemInfo(path: systemInfo!)
    }

    /// The system, or exit 1 after saying why it could not be read.
    func load() throws -> SystemInfo { try PolicyInput.system(provider) }
}

/// System information from a qubes.xml store (offline: only dom0 runs).
struct StoreSystemInfo: SystemInfoProvider {
    var path: String

    func systemInfo() throws -> SystemInfo { try SystemInfo(store: try StoreInput.load(path).store) }
}

/// System information from a running qubesd, through the Admin API.
struct SocketSystemInfo: SystemInfoProvider {
    var path: String

    func systemInfo() throws -> SystemInfo {
        do {
            return try SystemInfo(backend: AdminAPIBackend(transport: AdminTransport(socketPath: path)))
        } catch let error as AdminError {
            throw CommandFailure("\(path): \(error)")
        }
    }
}

/// System information from a GetSystemInfo JSON file.
struct JSONSystemInfo: SystemInfoProvider {
    var path: String

    func systemInfo() throws -> SystemInfo {
        try SystemInfo(json: try PolicyInput.read(path), file: path)
    }
}

extension PolicyCommand {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eval", abstract: "Decide a qrexec call as dom0 would: allow, ask, deny (or error), and the rule that decided.",
            discussion: """
                A policy that fails to load denies every call, and the reason says so (exit 1). \
                With --calls, CALLS.json is a list of {"service", "argument", "source", "target"} objects \
                (and "requested_source" for a call a relay makes for a remote qube); \
                one result is printed per call, in order.
                """)

        @Argument(help: "SERVICE[+ARGUMENT] SOURCE [TARGET] (an empty or missing TARGET is @default).")
        var call: [String] = []
        @Option(help: "A JSON list of calls to decide, loading the policy once.") var calls: String?
        @Option(name: .customLong("requested-source"),
                help: "The remote qube SOURCE relays the call for (Qubes Air); the policy is evaluated for it.")
        var requestedSource = ""
        @OptionGroup var location: PolicyLocation
        @OptionGroup var system: SystemOptions
        @Flag(help: "Print each decision as one line of JSON.") var json = false

        func validate() throws {
            if calls == nil && !(2...3).contains(call.count) {
                throw ValidationError("Give SERVICE[+ARGUMENT] SOURCE TARGET, or --calls CALLS.json.")
            }
            if calls != nil && !call.isEmpty { throw ValidationError("Give either a call or --calls, not both.") }
        }

        func run() throws {
            // The policy loads on a second thread while the system and the calls are read
            // (docs/qrexec-policy.md, "Whole-process speed").
            let loader = location.loader
            let (load, (info, requests)) = try concurrently({ loader.load() }, { () throws in (try system.load(), try readCalls()) })
            let policy = location.policy(load)
            let answers = PolicyAnswers(evaluator: policy.map { PolicyEvaluator(policy: $0, system: info) }, json: json)
            let failed = answers.write(requests)
            Tool.keepUntilExit((load, info, requests, answers))
            if failed { throw ExitCode(1) }
        }

        private func readCalls() throws -> [Call] {
            guard let calls else {
                return [Call(serviceAndArgument: call[0], source: call[1], target: call.count == 3 ? call[2] : "",
                             requestedSource: requestedSource)]
            }
            return try PolicyInput.orExit { try Call.list(json: try PolicyInput.read(calls), file: calls) }
        }
    }
}

extension PolicyCommand {
    struct Lint: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lint", abstract: "Check policy: load errors, rules that can never match, admin.* rules without target=dom0, "
                + "and with --store, rules and ask prompts naming qubes that do not exist.",
            discussion: "Directories are merged as dom0 merges them (the first wins for files of the same name); "
                + "files are loaded as top-level files. Exit status: 0 clean, 1 on any finding.")

        @Argument(help: "Policy directories or files (default: /run/qubes/policy.d and /etc/qubes/policy.d).")
        var paths: [String] = []
        @Option(name: .customLong("legacy-dir"), help: "The old-format folder that !compat-4.0 reads.")
        var legacyDirectory = PolicyLoader.defaultLegacyDirectory
        @Option(help: "A qubes.xml file: also report rules naming qubes it does not have.") var store: String?
        @Flag(help: "Print the findings as a JSON list.") var json = false

        func run() throws {
            let files = SystemPolicyFiles()
            let directories = paths.isEmpty ? PolicyLoader.defaultDirectories : paths.filter { files.kind(of: $0) == .directory }
            let loose = paths.filter { files.kind(of: $0) != .directory }
            let load = PolicyLoader(directories: directories, extraFiles: loose, legacyDirectory: legacyDirectory).load()
            let system = try store.map { try PolicyInput.system(StoreSystemInfo(path: $0)) }
            let findings = PolicyLint.findings(load, system: system)
            if json {
                Terminal.write(JSONValue.array(findings.map { $0.json }).compactText() + "\n")
            } else {
                for finding in findings { Terminal.error(finding.description) }
                Terminal.write("\(load.files.count) files, \(load.policy.rules.count) rules, \(findings.count) findings\n")
            }
            if !findings.isEmpty { throw ExitCode(1) }
        }
    }

    struct Matrix: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "matrix", abstract: "The decision for every (source, target) pair of a store's qubes for one service.",
            discussion: "Targets are every qube, then @default and @dispvm. A policy that fails to load denies everything (exit 1).")

        @Argument(help: "SERVICE[+ARGUMENT].") var service: String
        @Option(help: "The qubes.xml file.") var store: String
        @OptionGroup var location: PolicyLocation
        @Flag(help: "Print the matrix as JSON.") var json = false

        func run() throws {
            let system = try PolicyInput.system(StoreSystemInfo(path: store))
            guard case .success(let policy) = location.load() else { throw ExitCode(1) }
            let matrix = PolicyMatrix(PolicyEvaluator(policy: policy, system: system), service: service)
            Terminal.write(
                json
                    ? matrix.json.compactText() + "\n"
                    : Table.render(
                        header: ["source \\ target"] + matrix.targets,
                        rows: zip(matrix.sources, matrix.cells).map { source, row in [source] + row.map(\.name) }))
        }
    }

    struct Shards: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "shards", abstract: "Write the isolation policy for the shards attached to a merged store.",
            discussion: "Shards are the qubes tagged shard-<name>. The file is 20-lq-shards.policy, written atomically; "
                + "with no shard attached it holds only its header.")

        @Option(help: "The merged qubes.xml file.") var store: String
        @Option(name: .shortAndLong, help: "The policy directory to write to.") var output = "/run/qubes/policy.d"

        func run() throws {
            let merged = try StoreInput.load(store).store
            do {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            } catch {
                throw CommandFailure("\(output): cannot create the policy directory: \(error.localizedDescription)")
            }
            try PolicyInput.orExit {
                for (name, text) in try ShardIsolationPolicy.files(for: merged) {
                    try SystemPolicyFiles().replace(name, in: output, with: Array(text.utf8))
                    Terminal.write("\(output)/\(name): \(ShardIsolationPolicy.shards(in: merged).count) shards\n")
                }
            }
        }
    }
}

/// Reading the inputs named on the command line.
enum PolicyInput {
    /// A JSON input file (system information, calls), at most 64 MiB.
    static func read(_ path: String) throws(PolicyError) -> [UInt8] { try SystemPolicyFiles().read(path, limit: 64 << 20) }

    /// The system `provider` gives, or exit 1 after saying why it could not be read.
    static func system(_ provider: any SystemInfoProvider) throws -> SystemInfo { try orExit { try provider.systemInfo() } }

    /// The value of `body`, or exit 1 after printing why it failed.
    static func orExit<Value>(_ body: () throws -> Value) throws -> Value { try Tool.failing("error: ", body) }
}
