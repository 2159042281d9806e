import ArgumentParser
import QrexecPolicy
import QubesStore

/// `lq policy …`: evaluate, lint, tabulate and generate qrexec policy.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Evaluate, check and generate qrexec policy as dom0 reads it.",
        subcommands: [Eval.self]
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
    func load() -> Result<Policy, PolicyError> {
        let result = loader.load()
        for error in result.errors { Terminal.error("error: \(error)") }
        return result.errors.first.map { .failure($0) } ?? .success(result.policy)
    }
}

/// Where the qubes come from: a qubes.xml store or a GetSystemInfo JSON file.
struct SystemOptions: ParsableArguments {
    @Option(help: "A qubes.xml file to take the qubes from.") var store: String?
    @Option(name: .customLong("system-info"), help: "A JSON file in the form of qubesd's internal.GetSystemInfo.")
    var systemInfo: String?

    func validate() throws {
        guard (store == nil) != (systemInfo == nil) else { throw ValidationError("Give exactly one of --store and --system-info.") }
    }

    var provider: any SystemInfoProvider {
        if let store { return StoreSystemInfo(path: store) }
        return JSONSystemInfo(path: systemInfo!)
    }

    /// The system, or exit 1 after saying why it could not be read.
    func load() throws -> SystemInfo { try PolicyInput.orExit { try provider.systemInfo() } }
}

/// System information from a qubes.xml store (offline: only dom0 runs).
struct StoreSystemInfo: SystemInfoProvider {
    var path: String

    func systemInfo() throws -> SystemInfo { try SystemInfo(store: try StoreInput.load(path).store) }
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
            abstract: "Decide a qrexec call as dom0 would: allow, ask, deny (or error), and the rule that decided.",
            discussion: """
                A policy that fails to load denies every call, and the reason says so (exit 1). \
                With --calls, CALLS.json is a list of {"service", "argument", "source", "target"} objects; \
                one result is printed per call, in order.
                """)

        @Argument(help: "SERVICE[+ARGUMENT] SOURCE [TARGET] (an empty or missing TARGET is @default).")
        var call: [String] = []
        @Option(help: "A JSON list of calls to decide, loading the policy once.") var calls: String?
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
            let info = try system.load()
            let requests: [Call]
            if let calls {
                requests = try PolicyInput.orExit { try Call.list(json: try PolicyInput.read(calls), file: calls) }
            } else {
                requests = [Call(serviceAndArgument: call[0], source: call[1], target: call.count == 3 ? call[2] : "")]
            }
            let policy = location.load()
            let evaluator = try? PolicyEvaluator(policy: policy.get(), system: info)
            var failed = evaluator == nil
            for request in requests {
                let decision: Decision
                switch policy {
                case .success: decision = evaluator!.evaluate(request)
                case .failure(let error): decision = .loadFailure(error)
                }
                if case .error = decision.outcome { failed = true }
                Terminal.write((json ? decision.json.compactText() : decision.summary) + "\n")
            }
            if failed { throw ExitCode(1) }
        }
    }
}

/// Reading the inputs named on the command line.
enum PolicyInput {
    /// A JSON input file (system information, calls), at most 64 MiB.
    static func read(_ path: String) throws(PolicyError) -> [UInt8] { try SystemPolicyFiles().read(path, limit: 64 << 20) }

    /// The value of `body`, or exit 1 after printing why it failed.
    static func orExit<Value>(_ body: () throws -> Value) throws -> Value {
        do {
            return try body()
        } catch let error as PolicyError {
            Terminal.error("error: \(error)")
            throw ExitCode(1)
        }
    }
}
