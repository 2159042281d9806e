import QrexecPolicy
import Testing

/// Generated files are named per spec §10 and always read back as written.
@Suite struct GeneratorTests {
    let allow = Action.allow(target: nil, user: nil, notify: false, autostart: true)

    @Test func fileNameAndText() throws {
        let rule = try Rule(service: "lq.Keys", argument: "+get", source: .tag("liteqube"), target: .qube("core-keys"),
                            action: .allow(target: nil, user: "root", notify: true, autostart: false))
        let file = try PolicyFile(priority: 5, name: "lq-keys", header: ["keys"], rules: [rule])
        #expect(file.fileName == "05-lq-keys.policy")
        #expect(file.text == "# keys\nlq.Keys +get @tag:liteqube core-keys allow user=root notify=yes autostart=no\n")
        let rendered = try PolicyGenerator.render([file])
        #expect(rendered == ["05-lq-keys.policy": file.text])
    }

    @Test func invalidRulesCannotBeMade() {
        #expect(throws: RuleError.self) { try Rule(service: "a b", argument: nil, source: .anyVM, target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: nil, argument: "+x", source: .anyVM, target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: "s", argument: "x", source: .anyVM, target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: "s", argument: nil, source: .default, target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: "s", argument: nil, source: .anyVM, target: .default, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: "s", argument: nil, source: .qube("my qube"), target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) { try Rule(service: "s", argument: nil, source: .tag(""), target: .anyVM, action: allow) }
        #expect(throws: RuleError.self) {
            try Rule(service: "s", argument: nil, source: .anyVM, target: .anyVM,
                     action: .allow(target: .anyVM, user: nil, notify: false, autostart: true))
        }
        #expect(throws: RuleError.self) {
            try Rule(service: "s", argument: nil, source: .anyVM, target: .anyVM,
                     action: .ask(target: nil, defaultTarget: .tag("x"), user: nil, notify: false, autostart: true))
        }
        #expect(throws: RuleError.self) {
            try Rule(service: "s", argument: nil, source: .anyVM, target: .anyVM,
                     action: .allow(target: nil, user: "a\tb", notify: false, autostart: true))
        }
    }

    @Test func invalidFilesCannotBeMade() throws {
        let rule = try Rule(service: "s", argument: nil, source: .anyVM, target: .anyVM, action: allow)
        #expect(throws: PolicyError.self) { try PolicyFile(priority: 100, name: "x", rules: []) }
        #expect(throws: PolicyError.self) { try PolicyFile(priority: 30, name: "Upper", rules: []) }
        #expect(throws: PolicyError.self) { try PolicyFile(priority: 30, name: "x", header: ["a\nb"], rules: []) }
        #expect(throws: PolicyError.self) {
            try PolicyGenerator.render([try PolicyFile(priority: 30, name: "x", rules: [rule]), try PolicyFile(priority: 30, name: "x", rules: [])])
        }
        let admin = try Rule(service: "admin.vm.List", argument: nil, source: .anyVM, target: .adminVM, action: allow)
        #expect(throws: PolicyError.self) { try PolicyFile(priority: 30, name: "admin", rules: [admin]) }
        let redirected = try Rule(service: "admin.vm.List", argument: nil, source: .anyVM, target: .adminVM,
                                  action: .allow(target: .adminVM, user: nil, notify: false, autostart: true))
        #expect(try PolicyFile(priority: 30, name: "admin", rules: [redirected]).text == "admin.vm.List * @anyvm @adminvm allow target=@adminvm\n")
    }

    /// Every rule of the worked examples can be regenerated and reads back the same.
    @Test func exampleRulesRoundTrip() throws {
        let policy = try PolicyLoader(directories: [PolicyFixtures.path("policy.d")], legacyDirectory: PolicyFixtures.path("legacy")).policy()
        let rules = try policy.rules.map { rule in
            try Rule(service: rule.service, argument: rule.argument, source: rule.source, target: rule.target, action: rule.action)
        }
        let text = try PolicyGenerator.render([PolicyFile(priority: 30, name: "all", rules: rules)])["30-all.policy"]!
        #expect(text.split(separator: "\n").count == policy.rules.count)
    }
}
