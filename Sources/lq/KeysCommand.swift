import ArgumentParser
import Glibc
import Provisioning

/// `lq addkey`: put secrets into the offline keys qube (the original's dom0 `lq-addkey`).
struct AddKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addkey", abstract: "Put secrets for a qube into the offline keys qube.", subcommands: [Password.self])

    struct Password: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a password that QUBE gets from the keys qube with liteqube.SplitPassword+TOKEN.",
            discussion: """
                The password is read from the terminal twice without echo, or as the first line of stdin. It reaches \
                the keys qube on stdin only; the template records the store's checksum, and both shut down so the \
                keys qube's next start serves it.
                """)

        @Argument(help: "The qube the password is for.") var qube: String
        @Argument(help: "The token it asks for.") var token: String
        @Option(help: "The keys qube.") var keysQube = "core-keys"
        @Option(help: "The template of the Liteqube service qubes.") var template = "debian-core"
        @Option(help: ArgumentHelp("qvm-run.", valueName: "path")) var qvmRun = "/usr/bin/qvm-run"
        @Option(help: ArgumentHelp("qvm-shutdown.", valueName: "path")) var qvmShutdown = "/usr/bin/qvm-shutdown"

        func run() throws {
            let password = try Terminal.exitOnError(prefix: "\(qube): ") { try Self.readPassword(for: "\(qube) \(token)") }
            let enrolment = KeysEnrolment(keysQube: keysQube, template: template, qvmRun: qvmRun, qvmShutdown: qvmShutdown)
            let pin = try Terminal.exitOnError(prefix: "\(qube): ") { try enrolment.savePassword(qube: qube, token: token, password: password) }
            Terminal.write("saved in \(keysQube), sha256 \(pin[0])\n")
        }

        struct Mismatch: Error, CustomStringConvertible {
            var description: String { "the two passwords differ" }
        }

        /// From the terminal (twice, no echo) or the first line of stdin.
        static func readPassword(for what: String) throws -> [UInt8] {
            guard isatty(0) == 1 else { return Array(line(maxBytes: 65536).prefix { $0 != 0x0A }) }
            var saved = termios()
            tcgetattr(0, &saved)
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSAFLUSH, &quiet)
            defer { tcsetattr(0, TCSAFLUSH, &saved) }
            prompt("Password for \(what): ")
            let first = line(maxBytes: 65536)
            prompt("\nAgain: ")
            let second = line(maxBytes: 65536)
            prompt("\n")
            guard first == second else { throw Mismatch() }
            return Array(first.prefix { $0 != 0x0A })
        }

        static func prompt(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }

        /// Bytes from stdin up to and including a newline.
        static func line(maxBytes: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            var byte: UInt8 = 0
            while bytes.count < maxBytes, read(0, &byte, 1) == 1 {
                bytes.append(byte)
                if byte == 0x0A { break }
            }
            return bytes
        }
    }
}
