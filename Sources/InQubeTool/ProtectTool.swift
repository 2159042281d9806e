import ArgumentParser

/// `lq-protect`: the boot-time guard as the template runs it, a small static
/// program without the rest of `lq` (same options as `lq protect`).
public struct ProtectTool: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "lq-protect", abstract: Protect.abstract, discussion: Protect.discussion)

    @OptionGroup var arguments: ProtectArguments

    public init() {}

    public func run() throws { try arguments.run() }
}
