import ArgumentParser
import Glibc

/// `lq`: Liteqube and qubes.xml tools for Qubes OS.
struct LQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lq",
        abstract: "Keep Qubes OS lean: Liteqube service qubes, qubes.xml exactly as qubesd reads it, qrexec policy.",
        subcommands: [
            StoreCommand.self, ListQubes.self, Prefs.self, Features.self, Tags.self, PlanCommand.self, ApplyCommand.self,
            DestroyCommand.self, MemCommand.self, GraphCommand.self, PolicyCommand.self,
            ProtectCommand.self, ShardCommand.self,
        ]
    )
}

/// Entry point: exit 0 on success, 1 on a finding or rejected input, 2 on usage errors.
@main
enum Main {
    static func main() {
        do {
            var command = try LQ.parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Glibc.exit(exit.rawValue)
        } catch {
            let code = LQ.exitCode(for: error)
            if code == .success {
                print(LQ.fullMessage(for: error))
                Glibc.exit(0)
            }
            Terminal.error(LQ.fullMessage(for: error))
            Glibc.exit(2)
        }
    }
}

/// Writing to the terminal: data to stdout, messages to stderr.
enum Terminal {
    static func write(_ bytes: [UInt8]) { writeAll(bytes, to: 1) }

    static func write(_ text: String) { writeAll(Array(text.utf8), to: 1) }

    static func error(_ message: String) {
        writeAll(Array((message.hasSuffix("\n") ? message : message + "\n").utf8), to: 2)
    }

    /// Runs `body`; an error from a library is printed after `prefix` and
    /// becomes exit status 1 (argument-parser errors pass through).
    static func exitOnError<Value>(prefix: String = "", _ body: () throws -> Value) throws -> Value {
        do {
            return try body()
        } catch let error where error is ExitCode || error is ValidationError || error is CleanExit {
            throw error
        } catch {
            Terminal.error(prefix + "\(error)")
            throw ExitCode(1)
        }
    }

    private static func writeAll(_ bytes: [UInt8], to descriptor: Int32) {
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
