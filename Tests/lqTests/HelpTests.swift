import Foundation
import LQCommon
import Testing

/// Every command's `--help`, pinned as text: a change to an option, its
/// default or its description shows up here as a diff. The commands are found
/// from the help itself (its SUBCOMMANDS section), so a new command is pinned
/// without a change here. Record again with
/// `LQ_RECORD_GOLDEN=1 swift test --filter HelpTests`.
@Suite struct HelpTests {
    static let folder = LQ.repository.appendingPathComponent("Tests/lqTests/Fixtures/help")

    /// The subcommands a help text lists.
    static func subcommands(_ help: String) -> [String] {
        guard let section = help.range(of: "\nSUBCOMMANDS:\n") else { return [] }
        return help[section.upperBound...].split(separator: "\n").compactMap { line in
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
            let name = line.dropFirst(2).prefix { $0 != " " }
            return name.isEmpty || name == "See" ? nil : String(name.split(separator: " ").first ?? name)
        }
    }

    /// `program` and every command below it, depth first, with their help.
    static func helpTree(_ program: String, _ path: [String] = []) throws -> [(name: String, text: String)] {
        let result = try InQubeTools.run(program, path + ["--help"], environment: ["COLUMNS": "100"])
        #expect(result.status == 0, "\(([program] + path).joined(separator: " ")) --help: \(result.stderr)")
        let name = ([URL(fileURLWithPath: program).lastPathComponent] + path).joined(separator: ".")
        return [(name, result.stdout)] + (try subcommands(result.stdout).flatMap { try helpTree(program, path + [$0]) })
    }

    /// The tools the template runs through links to `lq-inqube`.
    static func link(_ tool: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-help-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let link = folder.appendingPathComponent(tool).path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Bundle.main.bundleURL.appendingPathComponent("lq-inqube").path)
        return link
    }

    @Test(arguments: ["lq"] + InQubeToolName.allCases.map(\.rawValue))
    func helpIsUnchanged(_ program: String) throws {
        let tree = try Self.helpTree(program == "lq" ? LQ.binary.path : try Self.link(program))
        if program == "lq" { #expect(tree.count > 30, "\(tree.map(\.name))") }
        for (name, text) in tree { try GoldenProvisioningTests.compare(text, "../help/\(name).txt") }
    }

    /// `lq --version`: the release and the commit (docs/packaging.md, "Version"); builds outside
    /// scripts/release have no commit built in.
    @Test func versionNamesTheReleaseAndTheCommit() throws {
        let result = try LQ.run("--version")
        #expect(result.status == 0 && result.stderr.isEmpty)
        #expect(result.stdout.wholeMatch(of: /\d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n/) != nil, "\(result.stdout)")
    }
}
