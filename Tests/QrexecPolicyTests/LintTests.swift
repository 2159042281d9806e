import QrexecPolicy
import Testing

/// Lint finds each planted problem, and nothing in a clean policy.
@Suite struct LintTests {
    func findings(_ folder: String) -> [LintFinding] {
        let load = PolicyLoader(directories: [PolicyFixtures.path(folder)], legacyDirectory: "/nonexistent").load()
        return PolicyLint.findings(load, system: PolicyFixtures.system)
    }

    @Test func plantedProblemsAreFound() {
        let found = findings("lint/planted").map { finding in
            "\(finding.file!.split(separator: "/").last!):\(finding.line!) \(finding.severity.rawValue) \(finding.kind.rawValue)"
        }
        #expect(found == [
            "40-broken.policy:1 error load",
            "30-planted.policy:3 warning shadowed",
            "30-planted.policy:5 warning shadowed",
            "30-planted.policy:6 warning admin-without-dom0-target",
            "30-planted.policy:7 warning ask-missing-qube",
            "30-planted.policy:8 warning missing-qube",
            "30-planted.policy:9 warning dispvm-source",
            "30-planted.policy:10 warning dispvm-source",
        ])
    }

    /// A `@dispvm:…` source never matches: reported as such (not as shadowed by
    /// an earlier `@anyvm` source), and it shadows no later rule.
    @Test func dispVMSourcesAreReportedAsDeadNotAsShadowed() {
        let found = findings("lint/planted").filter { $0.line.map { $0 >= 9 } ?? false }
        #expect(found.map(\.kind) == [.dispVMSource, .dispVMSource])
        #expect(found.map(\.value) == ["@dispvm:core-dvm", "@dispvm:@tag:x"])
        #expect(found[0].description.hasSuffix(
            "30-planted.policy:9: warning: rule can never match, a call never comes from '@dispvm:core-dvm' but from a real qube "
                + "(use @type:DispVM or a tag the disposables carry): 'lq.Shadow * @dispvm:core-dvm vault allow'"))
    }

    @Test func findingsNameTheValue() {
        let found = findings("lint/planted")
        #expect(found.first?.message.contains("invalid action: permit") == true)
        #expect(found.first?.column == 43)
        #expect(found.first { $0.kind == .askMissingQube }?.value == "ghost-qube")
        #expect(found.first { $0.kind == .missingQube }?.value == "phantom")
        #expect(found.first { $0.kind == .shadowed }?.message.contains("30-planted.policy:2") == true)
    }

    @Test func cleanPolicyHasNoFindings() {
        #expect(findings("lint/clean").isEmpty)
    }

    @Test func withoutSystemQubeChecksAreSkipped() {
        let load = PolicyLoader(directories: [PolicyFixtures.path("lint/planted")], legacyDirectory: "/nonexistent").load()
        #expect(!PolicyLint.findings(load).contains { $0.kind == .missingQube || $0.kind == .askMissingQube })
    }

    /// The worked-example directory loads cleanly; its deliberately overlapping rules are reported as shadowed only.
    @Test func exampleDirectoryHasOnlyWarnings() {
        let load = PolicyLoader(directories: [PolicyFixtures.path("policy.d")], legacyDirectory: PolicyFixtures.path("legacy")).load()
        #expect(load.errors.isEmpty)
        #expect(PolicyLint.findings(load).allSatisfy { $0.severity == .warning })
    }
}
