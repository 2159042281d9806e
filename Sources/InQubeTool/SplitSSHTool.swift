import ArgumentParser
import Glibc
import SplitServices

/// `lq-splitssh`: the server side of Liteqube's split SSH (docs/split-services.md, "Split SSH"). The
/// client side is a systemd socket in the client qube whose connections run `qrexec-client-vm`.
public struct SplitSSHTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-splitssh",
        abstract: "Serve a qube's SSH keys from the offline keys qube over qrexec (liteqube.SplitSSH).",
        discussion: "Exit status: 0 served, 1 refused, 2 usage.",
        subcommands: [Serve.self])

    public init() {}
}

extension SplitSSHTool {
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Server side (in core-keys, run by qrexec under ssh-agent): one agent connection of the caller.",
            discussion: """
                Run as `ssh-agent lq-splitssh serve`: the agent lives as long as this connection. The caller \
                (QREXEC_REMOTE_DOMAIN) gets its own keys, <store>/<caller>/*, and only key lists and signatures: \
                any other agent request is answered with a failure.
                """)

        @Option(help: ArgumentHelp("The folder holding one folder of keys per caller.", valueName: "dir")) var store = "/home/user/.ssh"
        @Option(help: ArgumentHelp("ssh-add.", valueName: "path")) var sshAdd = "/usr/bin/ssh-add"
        @OptionGroup var service: ServiceOptions

        func run() throws {
            // The client may leave at any moment: a write to it fails instead of killing the process.
            signal(SIGPIPE, SIG_IGN)
            let server = SplitSSHServer(store: store, agentSocket: Tool.environment("SSH_AUTH_SOCK"), sshAdd: sshAdd, context: service.context)
            try Tool.refusing { () throws(SplitError) in
                _ = try server.serve(caller: Tool.environment("QREXEC_REMOTE_DOMAIN"))
            }
        }
    }
}
