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
        /// A tag or type no qube has: never matches.
        case never
        /// A name the system does not have: matches only a source spelled the same that the system
        /// does not have either (docs/qrexec-policy.md, "Evaluation").
        case unknownQube(String)
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
        /// A qube by name or uuid (dom0 included when so named).
        case qube(Int32)
        /// The keyword `@adminvm`, which only dom0's own tokens match.
        case adminKeyword
        case `default`, dispVM, dispVMTemplate(Int32)
    }

    /// The caller after any relay: its position (-1 when the system does not have it) and name.
    struct Source {
        var index: Int32
        var name: String
    }

    let rules: [BoundRule]
    let byService: [ExactString: [Int32]]
    let anyService: [Int32]
    let arguments: [ExactString: Int32]
    let adminVM: Int32
    let typeOf: [Int32]
    let tagsOf: [[Int32]]
    let defaultDispVMOf: [Int32]
    let tagIDs: [ExactString: Int32]
    let typeIDs: [ExactString: Int32]
    /// The ask slots, ranked once so the choices come out sorted.
    let slots: ChoiceSlots

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
                byService[ExactString(service), default: []].append(position)
            } else {
                anyService.append(position)
            }
            let target = Self.matcher(rule.target, system, tagIDs, typeIDs)
            bound.append(BoundRule(
                argument: rule.argument.map { intern($0, &arguments) } ?? -1,
                source: Self.matcher(rule.source, system, tagIDs, typeIDs), target: target,
                offer: rule.action.redirect.map { Self.matcher($0, system, tagIDs, typeIDs) } ?? target,
                isDeny: { if case .deny = rule.action { return true } else { return false } }()))
        }
        self.rules = bound
        slots = ChoiceSlots(system.qubes, adminVM: adminVM, tagsOf: tagsOf, tagCount: tagIDs.count, typeOf: typeOf,
                            typeCount: typeIDs.count, offers: Set(bound.map(\.offer)))
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
        case .qube(let name): return system.index(named: name).map { .qube(Int32($0)) } ?? .unknownQube(name)
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
        let requestedText = call.target.isEmpty ? "@default" : call.target
        let requested: Requested
        let spelling: String
        switch normalise(requestedText) {
        case .success(let value): (requested, spelling) = value
        case .failure(let denial): return denial.decision
        }
        let source: Source
        switch caller(call) {
        case .success(let value): source = value
        case .failure(let denial): return denial.decision
        }
        let candidates = candidates(of: call.service)
        let argument = arguments[ExactString(call.argument)] ?? -2
        for position in candidates {
            let bound = rules[Int(position)]
            guard bound.argument == -1 || bound.argument == argument, matchesSource(bound.source, source) else { continue }
            if requested == .dispVM, bound.target.isDispVMTemplate, !hasDefaultDispVM(source) {
                // The reference fails while matching, before any rule is chosen (docs/qrexec-policy.md, "Deny and error").
                return Decision(outcome: .error(reason: "'@dispvm' of \(source.name), which has no default_dispvm, compared "
                                                    + "with the target of \(policy.rules[Int(position)].origin)"),
                                requestedTarget: spelling)
            }
            guard matchesTarget(bound.target, requested, source: source.index) else { continue }
            let rule = policy.rules[Int(position)]
            var decision = apply(rule, call: call, requested: requested, spelling: spelling, source: source,
                                 candidates: candidates, argument: argument)
            decision.rule = rule
            decision.requestedTarget = spelling
            return decision
        }
        return Decision(outcome: .deny(reason: "no matching rule found", notify: true), requestedTarget: spelling)
    }

    /// The rules that may match a call of `service`, in policy order: its own and the `*` ones, merged
    /// per call (copying every `*` rule into each service's list cost services × `*` rules: 10 000 files
    /// of both took 4 minutes and 1.3 GB).
    func candidates(of service: String) -> [Int32] {
        guard let own = byService[ExactString(service)] else { return anyService }
        guard !anyService.isEmpty else { return own }
        var merged: [Int32] = []
        merged.reserveCapacity(own.count + anyService.count)
        var (i, j) = (0, 0)
        while i < own.count || j < anyService.count {
            if j == anyService.count || (i < own.count && own[i] < anyService[j]) {
                merged.append(own[i])
                i += 1
            } else {
                merged.append(anyService[j])
                j += 1
            }
        }
        return merged
    }

    /// The qube the policy is evaluated for: the source, or the remote qube a relay calls for
    /// (docs/qrexec-policy.md, "Remote qubes").
    private func caller(_ call: Call) -> Result<Source, DenialDecision> {
        guard !call.requestedSource.isEmpty else {
            return .success(Source(index: system.index(named: call.source).map(Int32.init) ?? -1, name: call.source))
        }
        let name = call.requestedSource
        func deny(_ reason: String) -> Result<Source, DenialDecision> {
            .failure(DenialDecision(Decision(outcome: .deny(reason: reason, notify: true))))
        }
        guard let index = system.index(named: name) else { return deny("unknown requested source qube '\(name)'") }
        let qube = system.qubes[index]
        guard qube.type.isBytes("RemoteVM") else { return deny("\(name): requested source is only authorized for RemoteVM") }
        guard let relay = qube.relayVM, relay.isBytes(call.source) else { return deny("\(call.source) is not a relay for \(name)") }
        return .success(Source(index: Int32(index), name: name))
    }

    /// The intended target as a qube, `@default` or a disposable, or the denial of a bad one
    /// (docs/qrexec-policy.md, "Evaluation", step 1).
    func normalise(_ text: String) -> Result<(Requested, String), DenialDecision> {
        switch Token.parse(text, as: .intendedTarget) {
        case .failure:
            return .failure(DenialDecision(Decision(outcome: .deny(reason: "invalid intendedtarget token: '\(text)'", notify: true))))
        case .success(.adminVM):
            return .success((text.isBytes("dom0") && adminVM >= 0 ? .qube(adminVM) : .adminKeyword, text))
        case .success(.qube(let name)):
            guard let index = system.index(named: name) else { return .success((.default, "@default")) }
            return .success((.qube(Int32(index)), text))
        case .success(.dispVM):
            return .success((.dispVM, text))
        case .success(.dispVMTemplate(let name)):
            guard let index = system.index(named: name), system.qubes[index].templateForDispVMs else {
                return .failure(DenialDecision(Decision(outcome: .deny(reason: "not a template for dispvm: \(name)", notify: true))))
            }
            return .success((.dispVMTemplate(Int32(index)), text))
        case .success:
            return .success((.default, "@default"))
        }
    }

    /// Whether the source names a default disposable template (one the system may lack).
    func hasDefaultDispVM(_ source: Source) -> Bool { source.index >= 0 && system.qubes[Int(source.index)].defaultDispVM != nil }

    /// The source's default disposable template, -1 for none.
    func defaultDispVM(of source: Source) -> Int32 { source.index >= 0 ? defaultDispVMOf[Int(source.index)] : -1 }

    @inline(__always)
    func matchesSource(_ matcher: Matcher, _ source: Source) -> Bool {
        let index = source.index
        switch matcher {
        case .any: return true
        case .anyVM: return index < 0 || index != adminVM
        case .adminVM: return index >= 0 && index == adminVM
        case .qube(let wanted): return index == wanted
        case .type(let type): return index >= 0 && typeOf[Int(index)] == type
        case .tag(let tag): return index >= 0 && tagsOf[Int(index)].contains(tag)
        case .unknownQube(let name): return index < 0 && name.isBytes(source.name)
        default: return false
        }
    }

    @inline(__always)
    func matchesTarget(_ matcher: Matcher, _ requested: Requested, source: Int32) -> Bool {
        switch (matcher, requested) {
        case (.any, _): return true
        case (.anyVM, .qube(let index)): return index != adminVM
        case (.anyVM, .adminKeyword): return false
        case (.anyVM, _): return true
        case (.adminVM, .qube(let index)): return index == adminVM
        case (.adminVM, .adminKeyword): return true
        case (.qube(let wanted), .qube(let index)): return wanted == index
        case (.qube(let wanted), .adminKeyword): return wanted == adminVM
        case (.type(let type), .qube(let index)): return typeOf[Int(index)] == type
        case (.tag(let tag), .qube(let index)): return tagsOf[Int(index)].contains(tag)
        case (.default, .default), (.dispVM, .dispVM): return true
        case (.dispVMTemplate(let wanted), .dispVMTemplate(let index)): return wanted == index
        case (.dispVMTemplate(let wanted), .dispVM): return source >= 0 && defaultDispVMOf[Int(source)] == wanted
        case (.dispVMTag(let tag), .dispVMTemplate(let index)): return isDispVMTemplate(index, tagged: tag)
        case (.dispVMTag(let tag), .dispVM): return source >= 0 && isDispVMTemplate(defaultDispVMOf[Int(source)], tagged: tag)
        default: return false
        }
    }

    func isDispVMTemplate(_ index: Int32, tagged tag: Int32) -> Bool {
        index >= 0 && system.qubes[Int(index)].templateForDispVMs && tagsOf[Int(index)].contains(tag)
    }
}

extension PolicyEvaluator.Matcher {
    /// `@dispvm:NAME`, whether NAME exists or not.
    var isDispVMTemplate: Bool {
        switch self {
        case .dispVMTemplate, .missingDispVMTemplate: return true
        default: return false
        }
    }
}

/// A call refused before any rule is looked at.
struct DenialDecision: Error {
    var decision: Decision

    init(_ decision: Decision) { self.decision = decision }
}
