import QrexecPolicy
import Testing

/// The old format, read through `!include-service` and `!compat-4.0`, decides
/// exactly as the new-format rules the spec maps it to (spec §9).
@Suite struct CompatTests {
    /// Every call of `services` between every pair of example qubes, plus `@default` and `@dispvm` targets.
    func outcomes(_ policy: Policy, _ services: [(String, String)]) -> [Decision.Outcome] {
        /// The outcome without the deny reason, which names the file and line.
        func comparable(_ outcome: Decision.Outcome) -> Decision.Outcome {
            if case .deny(_, let notify) = outcome { return .deny(reason: "", notify: notify) }
            return outcome
        }
        let evaluator = PolicyEvaluator(policy: policy, system: PolicyFixtures.system)
        let names = PolicyFixtures.system.qubes.map(\.name)
        var result: [Decision.Outcome] = []
        for (service, argument) in services {
            for source in names {
                for target in names + ["", "@dispvm", "@adminvm"] {
                    result.append(comparable(evaluator.evaluate(Call(service: service, argument: argument, source: source, target: target)).outcome))
                }
            }
        }
        return result
    }

    func load(_ files: [String: String]) throws -> Policy {
        try PolicyLoader(directories: ["/p"], legacyDirectory: "/legacy", fileSystem: MemoryPolicyFiles(files)).policy()
    }

    @Test func includeServiceMatchesTheNewFormat() throws {
        let oldText = """
            ## old syntax
            work     $default    ask,default_target=vault
            $anyvm   $adminvm    allow,target=dom0
            $tag:liteqube $anyvm deny
            """
        let legacy = try load([
            "/p/30-a.policy": "!include-service lq.Old * include/lq-old\n!include-service lq.OldArg +beta include/lq-old",
            "/p/include/lq-old": oldText,
        ])
        let current = try load(["/p/30-a.policy": """
            lq.Old * work @default ask default_target=vault
            lq.Old * @anyvm @adminvm allow target=dom0
            lq.Old * @tag:liteqube @anyvm deny
            lq.OldArg +beta work @default ask default_target=vault
            lq.OldArg +beta @anyvm @adminvm allow target=dom0
            lq.OldArg +beta @tag:liteqube @anyvm deny
            """])
        let services = [("lq.Old", ""), ("lq.Old", "x"), ("lq.OldArg", "beta"), ("lq.OldArg", "gamma")]
        let (old, new) = (outcomes(legacy, services), outcomes(current, services))
        #expect(zip(old, new).filter { $0 != $1 }.isEmpty && old.count == new.count)
        #expect(Set(old).count >= 3)
        #expect(legacy.rules.map(\.description) == current.rules.map(\.description))
    }

    @Test func compatDirectoryMatchesTheNewFormat() throws {
        let legacy = try load([
            "/p/35-compat.policy": "!compat-4.0",
            "/legacy/lq.Legacy": "$anyvm  $anyvm  ask,default_target=vault",
            "/legacy/lq.Legacy+alpha": "work    vault   allow",
            "/legacy/lq.Legacy.rpmnew": "$anyvm  $anyvm  allow",
            "/legacy/.hidden": "$anyvm  $anyvm  allow",
            "/legacy/lq.Inc": "$include:lq.Legacy+alpha\n$anyvm dom0 deny",
        ])
        let current = try load(["/p/35-compat.policy": """
            lq.Inc * work vault allow
            lq.Inc * @anyvm @adminvm deny
            lq.Legacy +alpha work vault allow
            lq.Legacy +alpha @anyvm @anyvm deny
            lq.Legacy +alpha @anyvm @adminvm deny
            lq.Legacy * @anyvm @anyvm ask default_target=vault
            """])
        let services = [("lq.Legacy", "alpha"), ("lq.Legacy", "beta"), ("lq.Legacy", ""), ("lq.Inc", "")]
        let (old, new) = (outcomes(legacy, services), outcomes(current, services))
        #expect(zip(old, new).filter { $0 != $1 }.isEmpty && old.count == new.count)
        #expect(Set(old).count >= 3)
        #expect(legacy.rules.map(\.description) == current.rules.map(\.description))
        #expect(legacy.rules[3].origin.line == nil)
    }

    @Test func compatInsideAnOldFileIsInvalid() throws {
        let load = PolicyLoader(directories: ["/p"], legacyDirectory: "/legacy", fileSystem: MemoryPolicyFiles([
            "/p/30-a.policy": "!include-service s * old", "/p/old": "!compat-4.0",
        ])).load()
        #expect(load.errors.map(\.message) == ["invalid directive"])
        #expect(load.errors.first?.location?.file == "/p/old")
    }
}
