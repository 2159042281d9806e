import LQCommon
import QubesStore

/// A problem `lq policy lint` reports, with where it is and the value at fault.
public struct LintFinding: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        /// dom0 denies every call until it is fixed.
        case error
        /// The policy loads, but probably does not do what was meant.
        case warning
    }

    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A load error (syntax, file name, include, limit).
        case load
        /// A rule no call can reach: an earlier rule matches everything it matches.
        case shadowed
        /// An Admin API allow or ask rule that does not redirect to dom0.
        case adminWithoutDom0Target = "admin-without-dom0-target"
        /// An ask rule whose `target=` or `default_target=` names a qube that does not exist (the prompt still offers it).
        case askMissingQube = "ask-missing-qube"
        /// A rule naming a qube that does not exist (it never matches).
        case missingQube = "missing-qube"
        /// A rule whose source is `@dispvm:NAME` or `@dispvm:@tag:TAG`: a call
        /// always comes from a real qube, so it never matches.
        case dispVMSource = "dispvm-source"
    }

    public var severity: Severity
    public var kind: Kind
    public var file: String?
    public var line: Int?
    public var column: Int?
    public var message: String
    /// The offending value (a token, a qube name), when there is one.
    public var value: String?

    /// `file:line[:column]: severity: message`.
    public var description: String {
        var place = file ?? "<policy>"
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        return "\(place): \(severity.rawValue): \(message)"
    }

    /// `{"severity", "kind", "file", "line", "column", "message", "value"}`.
    public var json: JSONValue {
        func number(_ value: Int?) -> JSONValue { value.map { .integer(String($0)) } ?? .null }
        return .object([
            "severity": .string(severity.rawValue), "kind": .string(kind.rawValue), "file": file.map(JSONValue.string) ?? .null,
            "line": number(line), "column": number(column), "message": .string(message),
            "value": value.map(JSONValue.string) ?? .null,
        ])
    }
}

/// Checks a loaded policy for errors and for rules that do not do what they seem to.
public enum PolicyLint {
    /// The findings for `load`, in file order. With `system`, also rules that
    /// name qubes it does not have.
    public static func findings(_ load: PolicyLoad, system: SystemInfo? = nil) -> [LintFinding] {
        var findings = load.errors.map { error in
            LintFinding(severity: .error, kind: .load, file: error.location?.file, line: error.location?.line, column: error.location?.column,
                        message: error.message + (error.expected.map { " (expected \($0))" } ?? ""), value: nil)
        }
        let rules = load.policy.rules
        func warn(_ rule: Rule, _ kind: LintFinding.Kind, _ message: String, _ value: String?) {
            findings.append(LintFinding(severity: .warning, kind: kind, file: rule.origin.file, line: rule.origin.line,
                                        message: message, value: value))
        }
        var earlier = EarlierRules()
        for (index, rule) in rules.enumerated() {
            defer { earlier.add(rule, at: index) }
            guard rule.origin.line != nil else { continue }
            if isDispVM(rule.source) {
                warn(rule, .dispVMSource,
                     "rule can never match, a call never comes from '\(rule.source)' but from a real qube "
                         + "(use @type:DispVM or a tag the disposables carry): '\(rule)'",
                     rule.source.description)
            } else if let first = earlier.firstCovering(rule) {
                warn(rule, .shadowed, "rule can never match, \(rules[first].origin) matches every call it does: '\(rule)'",
                     rule.description)
            }
            if PolicyFile.isAdminRuleWithoutDom0Target(rule) {
                warn(rule, .adminWithoutDom0Target, "Admin API \(rule.action.name) rule without target=dom0: '\(rule)'",
                     rule.description)
            }
            guard let system else { continue }
            var offered: [String] = []
            if case .ask(let target, let defaultTarget, _, _, _) = rule.action {
                for token in [target, defaultTarget].compactMap({ $0 }) {
                    guard let name = qubeName(token), system.index(named: name) == nil else { continue }
                    offered.append(name)
                    warn(rule, .askMissingQube, "ask offers a qube that does not exist: '\(name)'", name)
                }
            }
            for token in [rule.source, rule.target, rule.action.redirect].compactMap({ $0 }) {
                guard let name = qubeName(token), system.index(named: name) == nil,
                      !offered.contains(where: { $0.isBytes(name) }) else { continue }
                warn(rule, .missingQube, "rule names a qube that does not exist: '\(name)'", name)
            }
        }
        return findings
    }

    /// Whether a source token is `@dispvm:NAME` or `@dispvm:@tag:TAG`, which the
    /// parser accepts but no call matches (docs/qrexec-policy.md, "Tokens").
    static func isDispVM(_ source: Token) -> Bool {
        switch source {
        case .dispVMTemplate, .dispVMTag: return true
        default: return false
        }
    }

    /// The qube a token names (`@dispvm:NAME` names NAME).
    static func qubeName(_ token: Token) -> String? {
        switch token {
        case .qube(let name), .dispVMTemplate(let name): return name
        default: return nil
        }
    }

    /// The rules seen so far, so the first one that matches every call a later rule matches is found with
    /// a few lookups, not a pass over every earlier rule (10 000 files took 16 s): it has the later rule's
    /// service or `*`, its argument or `*`, and a source and a target that each `covers` the later one's.
    struct EarlierRules {
        struct Key: Hashable {
            var service: [UInt8]?
            var argument: [UInt8]?
            var source: Token
            var target: Token
        }

        private var first: [Key: Int] = [:]

        mutating func add(_ rule: Rule, at index: Int) {
            let key = Key(service: rule.service.map { Array($0.utf8) }, argument: rule.argument.map { Array($0.utf8) }, source: rule.source, target: rule.target)
            if first[key] == nil { first[key] = index }
        }

        /// The index of the first rule added that matches every call `later` does.
        func firstCovering(_ later: Rule) -> Int? {
            let services: [[UInt8]?] = later.service.map { [nil, Array($0.utf8)] } ?? [nil]
            let arguments: [[UInt8]?] = later.argument.map { [nil, Array($0.utf8)] } ?? [nil]
            let wide = { (narrow: Token) in [narrow, .any, .anyVM].reduce(into: [Token]()) { if covers($1, narrow), !$0.contains($1) { $0.append($1) } } }
            var found: Int?
            for service in services {
                for argument in arguments {
                    for source in wide(later.source) {
                        for target in wide(later.target) {
                            if let index = first[Key(service: service, argument: argument, source: source, target: target)] {
                                found = min(found ?? index, index)
                            }
                        }
                    }
                }
            }
            return found
        }
    }

    /// Whether the token `wide` matches everything `narrow` does, in any system.
    static func covers(_ wide: Token, _ narrow: Token) -> Bool {
        if wide == narrow { return true }
        switch (wide, narrow) {
        case (.any, _): return true
        case (.anyVM, .qube(let name)):
            return !name.isBytes("uuid:" + SystemInfo.adminVMUUID)
        case (.anyVM, .type(let type)): return !type.isBytes("AdminVM")
        case (.anyVM, .default), (.anyVM, .dispVM), (.anyVM, .dispVMTemplate), (.anyVM, .dispVMTag): return true
        default: return false
        }
    }
}
