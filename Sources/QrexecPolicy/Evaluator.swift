import QubesStore

/// A policy bound to a system: decides calls as dom0's qrexec-policy-daemon does (docs/qrexec-policy.md,
/// "Evaluation").
///
/// Binding resolves every name, tag and type of the rules to numbers once, and
/// indexes the rules by service, so a call costs a scan of the rules of its
/// service (and `*`) with integer comparisons.
public struct PolicyEvaluator: Sendable {
    public let policy: Policy
    public let system: SystemInfo

    /// A token resolved against the system.
    enum Matcher: Sendable, Hashable {
        case any, anyVM, adminVM, qube(Int32), type(Int32), tag(Int32), `default`, dispVM, dispVMTemplate(Int32), dispVMTag(Int32)
        /// A token that names nothing in this system: never matches.
        case never
        /// `@dispvm:NAME` of a qube that does not exist: never matches, and the
        /// reference evaluator fails when an ask collects it (docs/qrexec-policy.md, "Deny and error").
        case missingDispVMTemplate(String)
    }

    struct BoundRule: Sendable {
        var argument: Int32
        var source: Matcher
        var target: Matcher
        /// What the rule offers to an ask prompt: its `target=`, else its target.
        var offer: Matcher
        var isDeny: Bool
    }

    /// The requested target after normalisation.
    enum Requested: Equatable {
        case qube(Int32), `default`, dispVM, dispVMTemplate(Int32)
    }

    private let rules: [BoundRule]
    private let byService: [ExactString: [Int32]]
    private let anyService: [Int32]
    private let arguments: [ExactString: Int32]
    private let adminVM: Int32
    private let typeOf: [Int32]
    private let tagsOf: [[Int32]]
    private let defaultDispVMOf: [Int32]
    private let tagIDs: [ExactString: Int32]
    private let typeIDs: [ExactString: Int32]

    /// Binds `policy` to `system`.
    public init(policy: Policy, system: SystemInfo) {
        self.policy = policy
        self.system = system
        var tagIDs: [ExactString: Int32] = [:]
        var typeIDs: [ExactString: Int32] = [:]
        func intern(_ text: String, _ table: inout [ExactString: Int32]) -> Int32 {
            let key = ExactString(text)
            if let id = table[key] { return id }
            let id = Int32(table.count)
            table[key] = id
            return id
        }
        tagsOf = system.qubes.map { qube in qube.tags.map { intern($0, &tagIDs) } }
        typeOf = system.qubes.map { intern($0.type, &typeIDs) }
        defaultDispVMOf = system.qubes.map { qube in qube.defaultDispVM.flatMap(system.index(named:)).map(Int32.init) ?? -1 }
        adminVM = system.adminVM.map(Int32.init) ?? -1
        self.tagIDs = tagIDs
        self.typeIDs = typeIDs

        var arguments: [ExactString: Int32] = [:]
        var byService: [ExactString: [Int32]] = [:]
        var anyService: [Int32] = []
        var bound: [BoundRule] = []
        bound.reserveCapacity(policy.rules.count)
        for (index, rule) in policy.rules.enumerated() {
            let position = Int32(index)
            if let service = rule.service {
                byService[ExactString(service), default: anyService].append(position)
            } else {
                anyService.append(position)
                for key in byService.keys { byService[key]!.append(position) }
            }
            let target = Self.matcher(rule.target, system, tagIDs, typeIDs)
            bound.append(BoundRule(
                argument: rule.argument.map { intern($0, &arguments) } ?? -1,
                source: Self.matcher(rule.source, system, tagIDs, typeIDs), target: target,
                offer: rule.action.redirect.map { Self.matcher($0, system, tagIDs, typeIDs) } ?? target,
                isDeny: { if case .deny = rule.action { return true } else { return false } }()))
        }
        self.rules = bound
        self.byService = byService
        self.anyService = anyService
        self.arguments = arguments
    }

    private static func matcher(_ token: Token, _ system: SystemInfo, _ tags: [ExactString: Int32],
                                _ types: [ExactString: Int32]) -> Matcher {
        switch token {
        case .any: return .any
        case .anyVM: return .anyVM
        case .adminVM: return .adminVM
        case .default: return .default
        case .dispVM: return .dispVM
        case .qube(let name): return system.index(named: name).map { .qube(Int32($0)) } ?? .never
        case .type(let type): return types[ExactString(type)].map { .type($0) } ?? .never
        case .tag(let tag): return tags[ExactString(tag)].map { .tag($0) } ?? .never
        case .dispVMTag(let tag): return tags[ExactString(tag)].map { .dispVMTag($0) } ?? .never
        case .dispVMTemplate(let name):
            return system.index(named: name).map { .dispVMTemplate(Int32($0)) } ?? .missingDispVMTemplate(name)
        }
    }

    // MARK: Evaluation

    /// The decision for `call`.
    public func evaluate(_ call: Call) -> Decision {
        guard call.source.utf8.first != UInt8(ascii: "@"), let sourceIndex = system.index(named: call.source) else {
            return Decision(outcome: .error(reason: "source qube does not exist: '\(call.source)'"))
        }
        let source = Int32(sourceIndex)
        let requestedText = call.target.isEmpty ? "@default" : call.target
        let requested: Requested
        let spelling: String
        switch normalise(requestedText) {
        case .success(let value): (requested, spelling) = value
        case .failure(let denial): return denial.decision
        }
        let candidates = byService[ExactString(call.service)] ?? anyService
        let argument = arguments[ExactString(call.argument)] ?? -2
        for position in candidates {
            let bound = rules[Int(position)]
            guard bound.argument == -1 || bound.argument == argument, matchesSource(bound.source, source),
                  matchesTarget(bound.target, requested, source: source) else { continue }
            let rule = policy.rules[Int(position)]
            var decision = apply(rule, requested: requested, spelling: spelling, source: source,
                                 candidates: candidates, argument: argument)
            decision.rule = rule
            decision.requestedTarget = spelling
            return decision
        }
        return Decision(outcome: .deny(reason: "no matching rule found", notify: true), requestedTarget: spelling)
    }

    /// The intended target as a qube, `@default` or a disposable, or the denial of a bad one
    /// (docs/qrexec-policy.md, "Evaluation", step 1).
    private func normalise(_ text: String) -> Result<(Requested, String), DenialDecision> {
        switch Token.parse(text, as: .intendedTarget) {
        case .failure:
            return .failure(DenialDecision(Decision(outcome: .deny(reason: "invalid intendedtarget token: '\(text)'", notify: true))))
        case .success(.adminVM):
            return .success((.qube(adminVM), text))
        case .success(.qube(let name)):
            guard let index = system.index(named: name) else { return .success((.default, "@default")) }
            return .success((.qube(Int32(index)), text))
        case .success(.dispVM):
            return .success((.dispVM, text))
        case .success(.dispVMTemplate(let name)):
            guard let index = dispVMTemplate(name) else {
                return .failure(DenialDecision(Decision(outcome: .deny(reason: "not a template for dispvm: \(name)", notify: true))))
            }
            return .success((.dispVMTemplate(index), text))
        case .success:
            return .success((.default, "@default"))
        }
    }

    /// The position of a disposable template named `name`.
    private func dispVMTemplate(_ name: String) -> Int32? {
        guard let index = system.index(named: name), system.qubes[index].templateForDispVMs else { return nil }
        return Int32(index)
    }

    @inline(__always)
    private func matchesSource(_ matcher: Matcher, _ source: Int32) -> Bool {
        switch matcher {
        case .any: return true
        case .anyVM: return source != adminVM
        case .adminVM: return source == adminVM
        case .qube(let index): return source == index
        case .type(let type): return typeOf[Int(source)] == type
        case .tag(let tag): return tagsOf[Int(source)].contains(tag)
        default: return false
        }
    }

    @inline(__always)
    private func matchesTarget(_ matcher: Matcher, _ requested: Requested, source: Int32) -> Bool {
        switch (matcher, requested) {
        case (.any, _): return true
        case (.anyVM, .qube(let index)): return index != adminVM
        case (.anyVM, _): return true
        case (.adminVM, .qube(let index)): return index == adminVM
        case (.qube(let wanted), .qube(let index)): return wanted == index
        case (.type(let type), .qube(let index)): return typeOf[Int(index)] == type
        case (.tag(let tag), .qube(let index)): return tagsOf[Int(index)].contains(tag)
        case (.default, .default), (.dispVM, .dispVM): return true
        case (.dispVMTemplate(let wanted), .dispVMTemplate(let index)): return wanted == index
        case (.dispVMTemplate(let wanted), .dispVM): return defaultDispVMOf[Int(source)] == wanted
        case (.dispVMTag(let tag), .dispVMTemplate(let index)): return isDispVMTemplate(index, tagged: tag)
        case (.dispVMTag(let tag), .dispVM): return isDispVMTemplate(defaultDispVMOf[Int(source)], tagged: tag)
        default: return false
        }
    }

    private func isDispVMTemplate(_ index: Int32, tagged tag: Int32) -> Bool {
        index >= 0 && system.qubes[Int(index)].templateForDispVMs && tagsOf[Int(index)].contains(tag)
    }

    private func apply(_ rule: Rule, requested: Requested, spelling: String, source: Int32, candidates: [Int32],
                       argument: Int32) -> Decision {
        switch rule.action {
        case .deny(let notify):
            return Decision(outcome: .deny(reason: "denied by policy \(rule.origin)", notify: notify))
        case .allow(let redirect, let user, let notify, let autostart):
            return allow(rule, redirect: redirect, requested: requested, spelling: spelling, source: source,
                         user: user, notify: notify, autostart: autostart)
        case .ask(let redirect, let defaultTarget, let user, let notify, let autostart):
            var choices: [String]
            if let redirect {
                choices = [redirect == .adminVM ? "dom0" : redirect.description]
            } else {
                switch collectChoices(source: source, candidates: candidates, argument: argument) {
                case .success(let collected): choices = collected
                case .failure(let error): return Decision(outcome: .error(reason: error.reason))
                }
            }
            if !autostart {
                choices.removeAll { choice in
                    guard let index = system.index(named: choice) else { return true }
                    return Int32(index) != adminVM && system.qubes[index].powerState != "Running"
                }
            }
            guard !choices.isEmpty else {
                return Decision(outcome: .deny(
                    reason: "policy define 'ask' action at \(rule.origin) but no target is available to choose from", notify: true))
            }
            var preselected: String?
            switch defaultTarget {
            case .dispVM?: preselected = dispVMName(of: source)
            case .adminVM?: preselected = "dom0"
            case let token?: preselected = token.description
            case nil: break
            }
            if let chosen = preselected, !choices.contains(where: { $0.isBytes(chosen) }) { preselected = nil }
            choices.sort { $0.precedes($1) }
            return Decision(outcome: .ask(targets: choices, defaultTarget: preselected, user: user, notify: notify, autostart: autostart))
        }
    }

    private func dispVMName(of source: Int32) -> String? {
        let template = defaultDispVMOf[Int(source)]
        return template >= 0 ? "@dispvm:" + system.qubes[Int(template)].name : nil
    }

    private func allow(_ rule: Rule, redirect: Token?, requested: Requested, spelling: String, source: Int32,
                       user: String?, notify: Bool, autostart: Bool) -> Decision {
        var target = requested
        var text = spelling
        if let redirect {
            switch normalise(redirect.description) {
            case .success(let value): (target, text) = value
            case .failure(let denial): return denial.decision
            }
        }
        let deny = { (reason: String, notify: Bool) in Decision(outcome: .deny(reason: reason, notify: notify)) }
        switch target {
        case .default:
            return deny("policy define 'allow' action at \(rule.origin) but no target is specified by caller or policy", true)
        case .dispVM:
            let template = defaultDispVMOf[Int(source)]
            guard template >= 0 else {
                return deny("policy define 'allow' action to @dispvm at \(rule.origin) but no DispVM base is set for this VM", true)
            }
            guard system.qubes[Int(template)].templateForDispVMs else {
                return deny("not a template for dispvm: \(system.qubes[Int(template)].name)", true)
            }
            target = .dispVMTemplate(template)
            text = "@dispvm:" + system.qubes[Int(template)].name
        case .qube(let index):
            if index == adminVM { text = "dom0" }
        case .dispVMTemplate:
            break
        }
        if !autostart {
            let running: Bool
            if case .qube(let index) = target {
                running = index == adminVM || system.qubes[Int(index)].powerState == "Running"
            } else {
                running = false
            }
            guard running else { return deny("target \(text) is denied because it would require autostart", notify) }
        }
        if target == .qube(source) { return deny("loopback qrexec connection not supported", true) }
        return Decision(outcome: .allow(target: text, user: user, notify: notify, autostart: autostart))
    }

    // MARK: Ask choices (docs/qrexec-policy.md, "Ask choices")

    struct CollectionError: Error {
        var reason: String
    }

    /// The choices of an ask without `target=`, unsorted.
    ///
    /// The reference walks the matching rules from last to first, adding the
    /// expansion of allow and ask rules and removing that of deny rules. So
    /// each choice is decided by the first rule (in load order) whose
    /// expansion holds it; this walks forward and stops expanding once every
    /// possible choice is decided.
    private func collectChoices(source: Int32, candidates: [Int32], argument: Int32) -> Result<[String], CollectionError> {
        let count = system.qubes.count
        // Slots: qube i, then @dispvm:i at count + i, then @dispvm at 2 * count.
        var decided = [Bool](repeating: false, count: 2 * count + 1)
        var included = decided
        var undecided = decided.count
        func offer(_ slot: Int, _ include: Bool) {
            guard !decided[slot] else { return }
            decided[slot] = true
            included[slot] = include
            undecided -= 1
        }
        for position in candidates {
            let bound = rules[Int(position)]
            guard bound.argument == -1 || bound.argument == argument, matchesSource(bound.source, source) else { continue }
            if case .missingDispVMTemplate(let name) = bound.offer {
                return .failure(CollectionError(reason: "'\(name)'"))
            }
            guard undecided > 0 else { continue }
            let include = !bound.isDeny
            switch bound.offer {
            case .any, .anyVM:
                for index in 0..<count {
                    if Int32(index) != adminVM || bound.offer == .any { offer(index, include) }
                    if system.qubes[index].templateForDispVMs { offer(count + index, include) }
                }
                offer(2 * count, include)
            case .adminVM:
                if adminVM >= 0 { offer(Int(adminVM), include) }
            case .qube(let index):
                offer(Int(index), include)
            case .type, .tag:
                for index in 0..<count where matchesTarget(bound.offer, .qube(Int32(index)), source: source) { offer(index, include) }
            case .dispVM:
                offer(2 * count, include)
            case .dispVMTemplate(let index):
                if system.qubes[Int(index)].templateForDispVMs { offer(count + Int(index), include) }
            case .dispVMTag(let tag):
                for index in 0..<count where isDispVMTemplate(Int32(index), tagged: tag) { offer(count + index, include) }
            case .default, .never, .missingDispVMTemplate:
                break
            }
        }
        if included[2 * count] {
            let template = defaultDispVMOf[Int(source)]
            if template >= 0 { included[count + Int(template)] = true }
        }
        var choices: [String] = []
        for index in 0..<count where !system.qubes[index].isInternal {
            if included[index] && Int32(index) != source { choices.append(system.qubes[index].name) }
            if included[count + index] { choices.append("@dispvm:" + system.qubes[index].name) }
        }
        return .success(choices)
    }
}

/// A call refused before any rule is looked at.
struct DenialDecision: Error {
    var decision: Decision

    init(_ decision: Decision) { self.decision = decision }
}
