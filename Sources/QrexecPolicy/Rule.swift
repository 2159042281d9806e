import QubesStore

/// Where a rule came from: the file as the loader named it, and the line
/// (`nil` for the deny rules `!compat-4.0` adds after a `SERVICE+ARG` file).
public struct RuleOrigin: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?

    public init(file: String, line: Int?) {
        self.file = file
        self.line = line
    }

    /// `file:line`, or `file:None` as qrexec logs a rule without a line.
    public var description: String { "\(file):" + (line.map(String.init) ?? "None") }
}

/// What a rule does, with the parameters each action takes (docs/qrexec-policy.md, "Rule grammar").
public enum Action: Sendable, Hashable {
    /// Run the call; `target` redirects it, `autostart: false` never starts a halted target.
    case allow(target: Token?, user: String?, notify: Bool, autostart: Bool)
    /// Let the user choose in a prompt; `target` fixes the only choice.
    case ask(target: Token?, defaultTarget: Token?, user: String?, notify: Bool, autostart: Bool)
    /// Refuse the call.
    case deny(notify: Bool)

    /// `allow`, `ask` or `deny`.
    public var name: String {
        switch self {
        case .allow: return "allow"
        case .ask: return "ask"
        case .deny: return "deny"
        }
    }

    /// `target=` of allow and ask.
    public var redirect: Token? {
        switch self {
        case .allow(let target, _, _, _), .ask(let target, _, _, _, _): return target
        case .deny: return nil
        }
    }

    /// The parameters as written after the action, in a fixed order, defaults left out.
    var parameters: [String] {
        var result: [String] = []
        switch self {
        case .allow(let target, let user, let notify, let autostart):
            if let target { result.append("target=\(target)") }
            if let user { result.append("user=\(user)") }
            if notify { result.append("notify=yes") }
            if !autostart { result.append("autostart=no") }
        case .ask(let target, let defaultTarget, let user, let notify, let autostart):
            if let target { result.append("target=\(target)") }
            if let defaultTarget { result.append("default_target=\(defaultTarget)") }
            if let user { result.append("user=\(user)") }
            if notify { result.append("notify=yes") }
            if !autostart { result.append("autostart=no") }
        case .deny(let notify):
            if !notify { result.append("notify=no") }
        }
        return result
    }
}

/// One policy rule: `SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE …]`.
public struct Rule: Sendable, Hashable, CustomStringConvertible {
    /// The service, or `nil` for `*`.
    public var service: String?
    /// The argument with its leading `+` (`+` alone is the empty argument), or `nil` for `*`.
    public var argument: String?
    public var source: Token
    public var target: Token
    public var action: Action
    public var origin: RuleOrigin

    /// A rule checked as the parser checks it, so it can be written and loaded back.
    /// - Throws: `RuleError` naming the field and the value that the parser would refuse.
    public init(service: String?, argument: String?, source: Token, target: Token, action: Action,
                origin: RuleOrigin = RuleOrigin(file: "<generated>", line: nil)) throws(RuleError) {
        self.init(unchecked: service, argument, source, target, action, origin)
        if let problem = RuleCheck.problem(in: self) { throw problem }
    }

    init(unchecked service: String?, _ argument: String?, _ source: Token, _ target: Token, _ action: Action,
         _ origin: RuleOrigin) {
        self.service = service
        self.argument = argument
        self.source = source
        self.target = target
        self.action = action
        self.origin = origin
    }

    /// The rule as one line of the new syntax, fields separated by single spaces.
    public var description: String {
        ([service ?? "*", argument ?? "*", source.description, target.description, action.name] + action.parameters)
            .joined(separator: " ")
    }
}

/// A rule field the parser would refuse: which field (0 = service … 5 = first
/// parameter), the message as qrexec words it, and what was expected.
public struct RuleError: Error, Sendable, Hashable {
    public var field: Int
    public var message: String
    public var expected: String?
}

/// The parser's checks on the fields of a rule (docs/qrexec-policy.md, "Rule grammar", "Tokens").
enum RuleCheck {
    static func service(_ text: String) -> Result<String?, RuleError> {
        if text.isBytes("*") { return .success(nil) }
        let invalid = Names.invalidCharacters(text, plus: false)
        guard invalid.isEmpty, !text.isEmpty else {
            return .failure(RuleError(field: 0, message: "service '\(text)' contains invalid characters: \(Names.tuple(invalid))",
                                      expected: "'*' or a name of A-Z a-z 0-9 - . _"))
        }
        return .success(text)
    }

    static func argument(_ text: String, service: String?) -> Result<String?, RuleError> {
        if text.isBytes("*") { return .success(nil) }
        let expected = "'*' or '+' followed by A-Z a-z 0-9 - . _ +"
        guard service != nil else {
            return .failure(RuleError(field: 1, message: "only * argument allowed for * service", expected: "'*'"))
        }
        guard text.utf8.first == UInt8(ascii: "+") else {
            return .failure(RuleError(field: 1, message: "argument '\(text)' does not start with +", expected: expected))
        }
        let invalid = Names.invalidCharacters(text, plus: true)
        guard invalid.isEmpty else {
            return .failure(RuleError(field: 1, message: "argument '\(text)' contains invalid characters: \(Names.tuple(invalid))",
                                      expected: expected))
        }
        return .success(text)
    }

    static func token(_ text: String, as context: Token.Context, field: Int) -> Result<Token, RuleError> {
        Token.parse(text, as: context).mapError { RuleError(field: field, message: $0.message, expected: context.expected) }
    }

    /// The action from its name and `KEY=VALUE` parameters (fields 5 and up).
    static func action(_ name: String, _ parameters: [String]) -> Result<Action, RuleError> {
        var values: [ExactString: (value: String, field: Int)] = [:]
        for (offset, parameter) in parameters.enumerated() {
            let field = 5 + offset
            guard let equals = parameter.utf8.firstIndex(of: UInt8(ascii: "=")) else {
                return .failure(RuleError(field: field, message: "invalid action parameter syntax: '\(parameter)'", expected: "KEY=VALUE"))
            }
            let key = ExactString(String(parameter[..<equals]))
            guard values[key] == nil else {
                return .failure(RuleError(field: field, message: "parameter given twice: '\(key)'", expected: "each parameter once"))
            }
            values[key] = (String(parameter[parameter.utf8.index(after: equals)...]), field)
        }
        let allowed: [ExactString]
        let typeName: String
        switch name {
        case _ where name.isBytes("allow"): (allowed, typeName) = (["target", "user", "notify", "autostart"], "Allow")
        case _ where name.isBytes("ask"): (allowed, typeName) = (["target", "default_target", "user", "notify", "autostart"], "Ask")
        case _ where name.isBytes("deny"): (allowed, typeName) = (["notify"], "Deny")
        default: return .failure(RuleError(field: 4, message: "invalid action: \(name)", expected: "allow, ask or deny"))
        }
        guard values.keys.allSatisfy({ allowed.contains(ExactString($0.value)) }) else {
            let list = parameters.map { "'\($0)'" }.joined(separator: ", ")
            return .failure(RuleError(field: 5, message: "invalid parameters for action \(typeName): [\(list)]",
                                      expected: "parameters of \(name): " + allowed.map(\.value).joined(separator: ", ")))
        }
        func flag(_ key: String, _ fallback: Bool) -> Result<Bool, RuleError> {
            guard let entry = values[ExactString(key)] else { return .success(fallback) }
            if entry.value.isBytes("yes") { return .success(true) }
            if entry.value.isBytes("no") { return .success(false) }
            return .failure(RuleError(field: entry.field, message: "'\(key)' is '\(entry.value)', but can be only 'yes' or 'no'",
                                      expected: "yes or no"))
        }
        func redirect(_ key: String) -> Result<Token?, RuleError> {
            guard let entry = values[ExactString(key)] else { return .success(nil) }
            return token(entry.value, as: .redirect, field: entry.field).map { $0 }
        }
        return Result {
            switch typeName {
            case "Allow":
                return .allow(target: try redirect("target").get(), user: values[ExactString("user")]?.value,
                              notify: try flag("notify", false).get(), autostart: try flag("autostart", true).get())
            case "Ask":
                return .ask(target: try redirect("target").get(), defaultTarget: try redirect("default_target").get(),
                            user: values[ExactString("user")]?.value, notify: try flag("notify", false).get(),
                            autostart: try flag("autostart", true).get())
            default:
                return .deny(notify: try flag("notify", true).get())
            }
        }.mapError { $0 as! RuleError }
    }

    /// Checks across fields: an allow rule for `@default` must redirect.
    static func combined(target: Token, action: Action) -> RuleError? {
        if case .default = target, case .allow(nil, _, _, _) = action {
            return RuleError(field: 3, message: "allow action for @default rule must specify target= option", expected: "target=")
        }
        return nil
    }

    /// All fields at once: a rule from the text of its fields.
    static func rule(_ fields: [String], origin: RuleOrigin) -> Result<Rule, RuleError> {
        Result {
            let service = try Self.service(fields[0]).get()
            let argument = try Self.argument(fields[1], service: service).get()
            let source = try token(fields[2], as: .source, field: 2).get()
            let target = try token(fields[3], as: .target, field: 3).get()
            let action = try Self.action(fields[4], Array(fields[5...])).get()
            if let problem = combined(target: target, action: action) { throw problem }
            return Rule(unchecked: service, argument, source, target, action, origin)
        }.mapError { $0 as! RuleError }
    }

    /// Why a typed rule could not be written and read back the same, if it could not.
    static func problem(in rule: Rule) -> RuleError? {
        let fields = rule.description.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let expected = 5 + rule.action.parameters.count
        guard fields.count == expected, fields.allSatisfy({ !$0.isEmpty && !Lines.hasSpaceOrControl($0) })
        else {
            return RuleError(field: 0, message: "a field is empty or contains whitespace or control characters: '\(rule)'",
                             expected: "non-empty fields without whitespace")
        }
        switch Self.rule(fields, origin: rule.origin) {
        case .failure(let error): return error
        case .success(let parsed):
            return parsed == rule ? nil : RuleError(field: 0, message: "the rule reads back differently: '\(rule)'", expected: nil)
        }
    }
}

extension Token.Context {
    /// The tokens this place takes, for error messages.
    var expected: String {
        switch self {
        case .source: return "a qube name, uuid:, dom0, @adminvm, @anyvm, *, @tag:, @type: or @dispvm:"
        case .target: return "a qube name, uuid:, dom0, @adminvm, @anyvm, *, @default, @tag:, @type:, @dispvm or @dispvm:"
        case .redirect: return "a qube name, uuid:, dom0, @adminvm, @dispvm or @dispvm:NAME"
        case .intendedTarget: return "a qube name, uuid:, dom0, @adminvm, @default, @dispvm or @dispvm:NAME"
        }
    }
}
