import Foundation
import QrexecPolicy
import Testing

/// The shadowed-rule check finds, for every rule, the first earlier rule that matches every call it does
/// (docs/qrexec-policy.md, "Lint"), the same as comparing it with each earlier rule in turn.
@Suite struct LintShadowTests {
    static let services = ["*", "qubes.A", "qubes.B"]
    static let arguments = ["*", "+x", "+"]
    static let sources = ["*", "@anyvm", "work", "@tag:t", "@type:AppVM", "@adminvm"]
    static let targets = ["*", "@anyvm", "vault", "@default", "@dispvm", "@adminvm", "@tag:t"]

    /// Whether the token `wide` matches every call the token `narrow` does in any system: the same token,
    /// `*`, or `@anyvm` for a qube by name, a type but AdminVM, `@default` or `@dispvm` (a tag may be dom0's).
    static func covers(_ wide: String, _ narrow: String) -> Bool {
        let anyVM = (!narrow.hasPrefix("@") && narrow != "*") || ["@type:AppVM", "@default", "@dispvm"].contains(narrow)
        return wide == narrow || wide == "*" || (wide == "@anyvm" && anyVM)
    }

    @Test func theFirstCoveringRuleIsFoundAmongEveryCombination() throws {
        var rules: [[String]] = []
        for service in Self.services {
            // A `*` service takes only a `*` argument.
            for argument in Self.arguments where service != "*" || argument == "*" {
                for source in Self.sources {
                    for target in Self.targets { rules.append([service, argument, source, target]) }
                }
            }
        }
        // A fixed shuffle (an LCG), so wide rules come before and after narrow ones.
        var state: UInt64 = 19
        for index in rules.indices.reversed() {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            rules.swapAt(index, Int((state >> 33) % UInt64(index + 1)))
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-lint-shadow-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Split over files, as the check runs across them.
        for start in stride(from: 0, to: rules.count, by: 50) {
            let text = rules[start..<min(start + 50, rules.count)].map { $0.joined(separator: " ") + " deny\n" }.joined()
            try text.write(toFile: folder + "/" + String(format: "%02d-part.policy", 10 + start / 50), atomically: false, encoding: .utf8)
        }
        let load = PolicyLoader(directories: [folder], legacyDirectory: "/nonexistent").load()
        #expect(load.errors.isEmpty, "\(load.errors)")
        let place = { (index: Int) in String(format: "%02d-part.policy:%d", 10 + index / 50, index % 50 + 1) }
        var expected: [String] = []
        for (index, rule) in rules.enumerated() {
            let first = rules[..<index].firstIndex { earlier in
                (earlier[0] == "*" || earlier[0] == rule[0]) && (earlier[1] == "*" || earlier[1] == rule[1])
                    && Self.covers(earlier[2], rule[2]) && Self.covers(earlier[3], rule[3])
            }
            if let first { expected.append("\(place(index)) by \(place(first))") }
        }
        let found = PolicyLint.findings(load).filter { $0.kind == .shadowed }.map { finding in
            let by = finding.message.firstMatch(of: /rule can never match, .*\/([0-9]+-part\.policy:[0-9]+) matches/).map { String($0.1) } ?? "?"
            return "\(finding.file!.split(separator: "/").last!):\(finding.line!) by \(by)"
        }
        #expect(expected.count > 100)
        #expect(found == expected, "only found: \(found.filter { !expected.contains($0) }.prefix(5)), only expected: \(expected.filter { !found.contains($0) }.prefix(5))")
    }
}
