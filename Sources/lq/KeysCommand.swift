import ArgumentParser
import InQubeTool
import Glibc
import Provisioning
import SystemLayer

/// `lq addkey`: put secrets into the offline keys qube (docs/split-services.md, "Split password", "Split file", "Split SSH").
struct AddKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addkey", abstract: "Put secrets for a qube into the offline keys qube.", subcommands: [Password.self, File.self, SSH.self])

    /// Where the keys qube and its template are, and the dom0 programs that reach them.
    struct KeysOptions: ParsableArguments {
        @OptionGroup var manifest: ManifestFile
        @Option(help: "The keys qube (default: the manifest's).") var keysQube: String?
        @Option(help: "The template of the Liteqube service qubes (default: the manifest's).") var template: String?
        @Option(help: ArgumentHelp("qvm-run.", valueName: "path")) var qvmRun = "/usr/bin/qvm-run"
        @Option(help: ArgumentHelp("qvm-shutdown.", valueName: "path")) var qvmShutdown = "/usr/bin/qvm-shutdown"

        func enrolment() throws -> KeysEnrolment {
            let names = try manifest.loadIfPresent()
            return KeysEnrolment(
                keysQube: keysQube ?? names.name(.keys), template: template ?? names.name(.core), qvmRun: qvmRun, qvmShutdown: qvmShutdown)
        }
    }

    struct File: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "file", abstract: "Save a file that QUBE gets from the keys qube with liteqube.SplitFile+NAME (at most 16 MiB).",
            discussion: "The content comes from --from or stdin; the template records its checksum, and both qubes shut down so the keys qube's next start serves it.")

        @Argument(help: "The qube the file is for.") var qube: String
        @Argument(help: "The name it asks for.") var name: String
        @Option(help: ArgumentHelp("The file to store (default: stdin).", valueName: "path")) var from: String?
        @OptionGroup var keys: KeysOptions

        func run() throws {
            let content = try Tool.failing("\(from ?? "stdin"): ") { () throws -> [UInt8] in
                try from.map { try StoreInput.read($0) } ?? HostSystem().read(stream: 0, limit: KeysEnrolment.maxFileSize)
            }
            let enrolment = try keys.enrolment()
            let pin = try Tool.failing("\(qube): ") { try enrolment.saveFile(qube: qube, name: name, content: content) }
            Terminal.write("saved in \(enrolment.keysQube), sha256 \(pin[0])\n")
        }
    }

    struct SSH: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh", abstract: "Save an SSH key that QUBE's agent socket uses through the keys qube (liteqube.SplitSSH).",
            discussion: """
                The key (an OpenSSH private key without passphrase, at most 16 KiB) comes from --from or stdin; \
                the template records its checksum and both qubes shut down. Then QUBE gets its agent socket \
                ($XDG_RUNTIME_DIR/liteqube-ssh-agent, SSH_AUTH_SOCK) unless --no-client; `ssh-add -L` there \
                lists the public keys. QUBE must be in the manifest's ssh_clients for the policy to let it in.
                """)

        @Argument(help: "The qube the key is for.") var qube: String
        @Option(help: ArgumentHelp("The key's name in the keys qube.", valueName: "name")) var name = "id"
        @Option(help: ArgumentHelp("The private key file (default: stdin).", valueName: "path")) var from: String?
        @Flag(help: "Do not set up the agent socket in QUBE.") var noClient = false
        @OptionGroup var keys: KeysOptions

        func run() throws {
            let key = try Tool.failing("\(from ?? "stdin"): ") { () throws -> [UInt8] in
                try from.map { try StoreInput.read($0) } ?? HostSystem().read(stream: 0, limit: 1 << 20)
            }
            let manifest = try keys.manifest.loadIfPresent()
            let enrolment = try keys.enrolment()
            let pin = try Tool.failing("\(qube): ") { try enrolment.saveSSHKey(qube: qube, name: name, key: key) }
            Terminal.write("saved in \(enrolment.keysQube), sha256 \(pin[0])\n")
            if !manifest.includes(.splitSSH) || !manifest.sshClients.contains(qube) {
                Tool.error("\(keys.manifest.path): \(qube) is not in ssh_clients of the split-ssh component: the policy denies its agent until it is and lq apply ran")
            }
            guard !noClient else { return }
            try Tool.failing("\(qube): ") { try enrolment.installSSHClient(qube: qube, installer: try SplitSSH.clientInstaller(manifest)) }
            Terminal.write("\(qube): agent socket set up; new shells there have SSH_AUTH_SOCK\n")
        }
    }

    struct Password: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "password", abstract: "Save a password that QUBE gets from the keys qube with liteqube.SplitPassword+TOKEN.",
            discussion: """
                The password is read from the terminal twice without echo, or as the first line of stdin. It reaches \
                the keys qube on stdin only; the template records the store's checksum, and both shut down so the \
                keys qube's next start serves it.
                """)

        @Argument(help: "The qube the password is for.") var qube: String
        @Argument(help: "The token it asks for.") var token: String
        @OptionGroup var keys: KeysOptions

        func run() throws {
            let password = try Tool.failing("\(qube): ") { try Self.readPassword(for: "\(qube) \(token)") }
            let enrolment = try keys.enrolment()
            let pin = try Tool.failing("\(qube): ") { try enrolment.savePassword(qube: qube, token: token, password: password) }
            Terminal.write("saved in \(enrolment.keysQube), sha256 \(pin[0])\n")
        }

        struct Mismatch: Error, CustomStringConvertible {
            var description: String { "the two passwords differ" }
        }

        /// From the terminal (twice, no echo) or the first line of stdin.
        static func readPassword(for what: String) throws -> [UInt8] {
            guard isatty(0) == 1 else { return Array(try line().prefix { $0 != 0x0A }) }
            var saved = termios()
            tcgetattr(0, &saved)
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(0, TCSAFLUSH, &quiet)
            defer { tcsetattr(0, TCSAFLUSH, &saved) }
            prompt("Password for \(what): ")
            let first = try line()
            prompt("\nAgain: ")
            let second = try line()
            prompt("\n")
            guard first == second else { throw Mismatch() }
            return Array(first.prefix { $0 != 0x0A })
        }

        /// One line of stdin (a terminal gives one line per read).
        static func line() throws -> [UInt8] { try HostSystem().read(stream: 0, limit: 65536, lines: 1) }

        static func prompt(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }
    }
}
