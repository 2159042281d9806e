import ArgumentParser
import SplitServices

/// `lq-torsetap`: Liteqube's TorSetAP in the Tor qube, one Tor state per network.
public struct TorSetAPTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-torsetap",
        abstract: "Keep one Tor state (entry guards, consensus) per network in the Tor qube (liteqube.TorSetAP).",
        discussion: "Runs as root (sudo from the qrexec service). Exit status: 0 done, 1 refused, 2 usage.",
        subcommands: [Select.self, Save.self])

    public init() {}
}

/// Where the states are.
struct TorStateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The current network's name (ap) and each network's state (var-lib/NAME).", valueName: "dir"))
    var stateFolder = "/rw/config/tor"
    @Option(help: ArgumentHelp("Tor's data folder.", valueName: "dir")) var dataFolder = "/var/lib/tor"
    @Option(help: ArgumentHelp("Tor's systemd unit.", valueName: "unit")) var unit = "tor@default.service"

    var state: TorNetworkState {
        TorNetworkState(stateFolder: stateFolder, dataFolder: dataFolder, tor: SystemdTor(unit: unit))
    }
}

extension TorSetAPTool {
    struct Select: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Make NAME the current network: save Tor's state for the network before, restore NAME's, start Tor.",
            discussion: """
                NAME is what the network qube sent (liteqube.TorSetAP+NAME): A-Z a-z 0-9 _ . + -, at most 64 bytes, \
                not starting with '.' or '-'. An empty NAME stops Tor and saves the state of the network before.
                """)

        @Argument(help: "The network's name.") var name: String
        @OptionGroup var options: TorStateOptions

        func run() throws {
            let state = options.state
            try Tool.refusing { () throws(SplitError) in
                switch try state.select(Array(name.utf8)) {
                case .kept(let network): Tool.error("\(network): already current; Tor started")
                case .switched(let from, let to): Tool.error("\(from.map { "\($0) saved, " } ?? "")\(to): Tor started with its own state")
                case .stopped(let network): Tool.error("no network: Tor stopped\(network.map { ", \($0) saved" } ?? "")")
                }
            }
        }
    }

    struct Save: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "save", abstract: "Save Tor's data folder as the current network's state (at shutdown, after Tor stopped).")

        @OptionGroup var options: TorStateOptions

        func run() throws {
            let state = options.state
            try Tool.refusing { () throws(SplitError) in
                if let network = try state.saveCurrent() { Tool.error("\(network): Tor state saved") }
            }
        }
    }
}
