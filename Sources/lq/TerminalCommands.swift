import ArgumentParser
import InQubeTool
import Provisioning

/// `lq xterm`: a root terminal in a Liteqube service qube (docs/liteqube.md, "Terminals").
struct XtermCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xterm",
        abstract: "Open a root terminal in a Liteqube service qube, shown through the display qube.",
        discussion: """
            The command runs as given (no shell parses it); without one, a login shell. dom0 asks before the \
            qube's display connects to the display qube (liteqube.SplitXorg).
            """)

    @Argument(help: "The qube.") var qube: String
    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.") var command: [String] = []
    @Option(help: ArgumentHelp("qvm-run.", valueName: "path")) var qvmRun = "/usr/bin/qvm-run"

    func run() throws {
        try Tool.failing(qube + ": ") { try ServiceTerminal(qvmRun: qvmRun).open(qube: qube, command: command) }
    }
}

/// `lq connect`: NetworkManager's text interface in the network qube, to join a network (docs/liteqube.md, "Terminals").
struct ConnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect", abstract: "Join a network: nmtui in the network qube, in a root terminal.")

    @OptionGroup var manifest: ManifestFile
    @Option(help: "The network qube (default: the manifest's).") var qube: String?
    @Option(help: ArgumentHelp("qvm-run.", valueName: "path")) var qvmRun = "/usr/bin/qvm-run"

    func run() throws {
        let qube = try qube ?? manifest.loadIfPresent().name(.net)
        try Tool.failing(qube + ": ") { try ServiceTerminal(qvmRun: qvmRun).open(qube: qube, command: ["nmtui"]) }
    }
}
