import ArgumentParser
import InQubeTool

/// `lq-protect`: the boot-time guard as the template runs it, a small static
/// program without the rest of `lq` (same options as `lq protect`).
@main
struct ProtectTool: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lq-protect", abstract: Protect.abstract, discussion: Protect.discussion)

    @OptionGroup var arguments: ProtectArguments

    func run() throws { try arguments.run() }

    static func main() { Tool.main(Self.self) }
}
