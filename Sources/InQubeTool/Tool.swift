import ArgumentParser
import Glibc
import LQCommon
import SplitServices
import SystemLayer

// What the tools that run inside qubes share (lq-protect, lq-splitfile, lq-splitpassword, lq-torsetap): reading the
// qrexec environment, stdin and stdout, and exit statuses (0 done, 1 refused, 2 usage); lq uses the
// same output and exit statuses. The guard and the services themselves are in BootProtect and SplitServices.

/// Options of a server side.
public struct ServiceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Re-arm the qube's shutdown to this many minutes after each request (core-keys: 2).", valueName: "minutes"))
    public var rearmShutdown: Int?
    @Flag(help: "Do not tell dom0 about requests (liteqube.Message).") public var noNotify = false

    public init() {}

    /// Notifier and keep-alive as asked.
    public var context: ServiceContext {
        let system = HostSystem()
        var context = ServiceContext(system: system)
        if !noNotify { context.notifier = QrexecNotifier(service: "liteqube.Message", system: system) }
        if let minutes = rearmShutdown {
            let root = geteuid() == 0
            context.keepAlive = { ServiceRequest.rearmShutdown(minutes: minutes, system: system, root: root) }
        }
        return context
    }
}

/// Options of a client side.
public struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The keys qube.", valueName: "qube")) public var from = "core-keys"
    @Option(help: ArgumentHelp("The qrexec client.", valueName: "path")) public var client = "/usr/bin/qrexec-client-vm"

    public init() {}
}

/// A value `Tool.keepUntilExit` keeps.
private final class Kept<Value> {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A command that failed or refused its input: the message (naming the file, qube, field and
/// value it concerns) is printed once, on stderr, and the exit status is 1.
public struct CommandFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ message: String) { description = message }
}

public enum Tool {
    /// Parses and runs a command: exit 0; 1 after a failure (its message printed here) or a finding
    /// (printed by the command); 2 on usage errors.
    public static func main<Command: ParsableCommand>(_ command: Command.Type) -> Never {
        var status: Int32 = 0
        do {
            var parsed = try command.parseAsRoot()
            try parsed.run()
        } catch let failure as CommandFailure {
            error(failure.description)
            status = 1
        } catch {
            status = (error as? ExitCode)?.rawValue ?? usage(error, command)
        }
        Glibc.exit(status)
    }

    /// Keeps `value` until the process exits: a command's large results (a store of a thousand
    /// qubes, a policy and its calls) are dropped with the process, not freed object by object
    /// just before it exits (docs/qubes-xml.md, "Checking").
    public static func keepUntilExit<Value>(_ value: Value) {
        _ = Unmanaged.passRetained(Kept(value))
    }

    /// Runs `body`; an error from a library becomes a `CommandFailure` after `context` (the file or
    /// qube it concerns); argument-parser errors and failures pass through.
    public static func failing<Value>(_ context: String = "", _ body: () throws -> Value) throws -> Value {
        do {
            return try body()
        } catch let error where error is ExitCode || error is ValidationError || error is CleanExit || error is CommandFailure {
            throw error
        } catch {
            throw CommandFailure(context + "\(error)")
        }
    }

    /// The command of each in-qube tool.
    static func command(_ tool: InQubeToolName) -> any ParsableCommand.Type {
        switch tool {
        case .protect: ProtectTool.self
        case .splitFile: SplitFileTool.self
        case .splitPassword: SplitPasswordTool.self
        case .splitSSH: SplitSSHTool.self
        case .storage: StorageTool.self
        case .torSetAP: TorSetAPTool.self
        }
    }

    /// Runs the tool the program was called as: the template holds one
    /// program and links named after each tool, so their code is there once.
    public static func mainByName() -> Never {
        guard let tool = InQubeToolName(rawValue: toolName) else {
            let names = InQubeToolName.allCases.map(\.rawValue).sorted()
            write(2, Array("\(toolName): call it through a link named \(names.joined(separator: ", "))\n".utf8))
            Glibc.exit(2)
        }
        main(command(tool))
    }

    /// Prints help (exit 0) or a usage error (exit 2).
    static func usage<Command: ParsableCommand>(_ error: any Error, _ command: Command.Type) -> Int32 {
        let help = command.exitCode(for: error) == .success
        let message = command.fullMessage(for: error)
        write(help ? 1 : 2, Array((message.hasSuffix("\n") || message.isEmpty ? message : message + "\n").utf8))
        return help ? 0 : 2
    }

    /// The server side: caller from `QREXEC_REMOTE_DOMAIN`, argument from `QREXEC_SERVICE_ARGUMENT`, the
    /// command line or stdin; the answer's bytes to stdout, a refusal to stderr with exit 1.
    public static func serve(_ handle: (String?, [UInt8]) throws(SplitError) -> [UInt8], argument positional: () -> String?) throws {
        let argument = ServiceRequest.argument(
            serviceArgument: environment("QREXEC_SERVICE_ARGUMENT"), positional: positional(), readLine: { input(lines: 1) })
        try refusing { () throws(SplitError) in output(try handle(environment("QREXEC_REMOTE_DOMAIN"), argument)) }
    }

    /// The client side: `qrexec-client-vm <from> <service>+<name>`, to stdout or a new 0600 file; when
    /// `from` refuses and there is a `fallback` qube, the same call to it.
    public static func fetch(
        _ options: ClientOptions, _ service: String, _ name: String, what: String, limit: Int, output path: String?, fallback: String? = nil
    ) throws {
        try refusing { () throws(SplitError) in
            let name = try validateArgument(Array(name.utf8), what: what)
            let client = QrexecClient(client: options.client)
            func call(_ qube: String) throws(SplitError) -> [UInt8] { try client.call(qube, service, argument: name, limit: limit) }
            let bytes: [UInt8]
            do throws(SplitError) {
                bytes = try call(options.from)
            } catch {
                guard error.code == .remote, let fallback else { throw error }
                bytes = try call(fallback)
            }
            guard let path else { return output(bytes) }
            let system = HostSystem()
            do {
                let fd = try system.createFile(currentDirectory, Array(path.utf8))
                defer { system.close(fd) }
                try system.write(fd, bytes)
            } catch {
                throw SplitError(.system, "\(path): \(error)")
            }
        }
    }

    /// Runs `body`; a refusal becomes a failure named after the tool (`<tool>: <message>`).
    public static func refusing(_ body: () throws(SplitError) -> Void) throws {
        do {
            try body()
        } catch {
            throw CommandFailure("\(toolName): \(error.message)")
        }
    }

    /// Stdin, at most `limit` bytes (64 KiB), up to `lines` newlines.
    public static func input(lines: Int, limit: Int = 65536) -> [UInt8] {
        (try? HostSystem().read(stream: 0, limit: limit, lines: lines)) ?? []
    }

    public static func output(_ bytes: [UInt8]) { write(1, bytes) }

    /// A message on stderr, ending in a newline.
    public static func error(_ message: String) { write(2, Array((message.hasSuffix("\n") ? message : message + "\n").utf8)) }

    static func write(_ fd: Int32, _ bytes: [UInt8]) { try? HostSystem().write(fd, bytes) }

    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    static var toolName: String {
        CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "lq-split"
    }
}
