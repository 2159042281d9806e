import ArgumentParser
import InQubeTool

/// `lq protect`: the boot-time guard of a qube's private volume (the template runs `lq-protect`).
struct ProtectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "protect", abstract: Protect.abstract, discussion: Protect.discussion)

    @OptionGroup var arguments: ProtectArguments

    func run() throws { try arguments.run() }
}
