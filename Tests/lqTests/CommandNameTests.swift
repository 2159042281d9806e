import ArgumentParser
import InQubeTool
import Testing

@testable import lq

/// Every command states its name: without one, swift-argument-parser derives
/// it from the type through reflection on each start, a measurable part of a
/// short command's whole-process time (docs/qubes-xml.md, "Checking").
@Suite struct CommandNameTests {
    /// The commands below `command`, depth first, each with the path that leads to it.
    static func tree(_ command: any ParsableCommand.Type, _ path: String) -> [(path: String, command: any ParsableCommand.Type)] {
        [(path, command)]
            + command.configuration.subcommands.flatMap { tree($0, path + " " + ($0.configuration.commandName ?? "\($0)")) }
    }

    @Test(arguments: [
        (lq.LQ.self as any ParsableCommand.Type, "lq"), (ProtectTool.self, "lq-protect"), (SplitFileTool.self, "lq-splitfile"),
        (SplitPasswordTool.self, "lq-splitpassword"), (StorageTool.self, "lq-storage"), (TorSetAPTool.self, "lq-torsetap"),
    ])
    func everyCommandNamesItself(_ root: any ParsableCommand.Type, _ name: String) {
        let commands = Self.tree(root, name)
        if name == "lq" { #expect(commands.count >= 20) }
        for (path, command) in commands {
            #expect(command.configuration.commandName != nil, "\(path) has no commandName")
        }
    }
}
