import ArgumentParser
import InQubeTool

/// `lq`: Liteqube and qubes.xml tools for Qubes OS. Exit 0 on success, 1 on
/// a finding or rejected input, 2 on usage errors.
@main
struct LQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lq",
        abstract: "Keep Qubes OS lean: Liteqube service qubes, qubes.xml exactly as qubesd reads it, qrexec policy.",
        version: Tool.version,
        subcommands: [
            StoreCommand.self, ListQubes.self, Prefs.self, Features.self, Tags.self, PlanCommand.self, ApplyCommand.self,
            DestroyCommand.self, MemCommand.self, GraphCommand.self, PolicyCommand.self,
            ProtectCommand.self, ShardCommand.self, XtermCommand.self, ConnectCommand.self,
            AddKeyCommand.self,
        ]
    )

    /// Called through a link named `create-snapshot` (qubesd's helper), lq is `lq shard create-snapshot`.
    static func main() {
        if CommandLine.arguments.first?.split(separator: "/").last == "create-snapshot" {
            Tool.main(ShardCommand.CreateSnapshotCommand.self)
        }
        Tool.main(Self.self)
    }
}

/// Writing to the terminal: data to stdout, messages to stderr.
enum Terminal {
    static func write(_ bytes: [UInt8]) { Tool.output(bytes) }

    static func write(_ text: String) { Tool.output(Array(text.utf8)) }

    /// A finding or a warning on stderr (failures are thrown as `CommandFailure`).
    static func error(_ message: String) { Tool.error(message) }
}
