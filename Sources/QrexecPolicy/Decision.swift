import LQCommon
import QubesStore

/// One qrexec call: `service+argument` from `source` to the target it asked for (docs/qrexec-policy.md, "Calls").
public struct Call: Sendable, Hashable {
    public var service: String
    /// `+` followed by the argument; `+` alone when there is none.
    public var argument: String
    public var source: String
    /// What the caller asked for; empty means `@default`.
    public var target: String
    /// The remote qube a relay `source` calls for (Qubes Air), empty for none; when
    /// set, the policy is evaluated for it (docs/qrexec-policy.md, "Remote qubes").
    public var requestedSource: String

    /// A call; `argument` may be given with or without its leading `+`.
    public init(service: String, argument: String = "", source: String, target: String, requestedSource: String = "") {
        self.service = service
        self.argument = argument.utf8.first == UInt8(ascii: "+") ? argument : "+" + argument
        self.source = source
        self.target = target
        self.requestedSource = requestedSource
    }

    /// A call given as `SERVICE+ARGUMENT` (split at the first `+`).
    public init(serviceAndArgument text: String, source: String, target: String, requestedSource: String = "") {
        let parts = text.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
        self.init(service: String(parts[0]), argument: parts.count == 2 ? String(parts[1]) : "", source: source, target: target,
                  requestedSource: requestedSource)
    }
}

extension Call {
    /// The calls of a JSON list of `{"service", "argument", "source", "target", "requested_source"}`
    /// objects (all but `service` and `source` may be missing or empty; other keys are ignored).
    public static func list(json bytes: [UInt8], file: String? = nil) throws(PolicyError) -> [Call] {
        guard case .array(let items) = try JSONReader.policyInput(bytes, file: file) else {
            throw PolicyError(.invalidInput, "not a JSON list", file: file, expected: "[{\"service\", \"source\", \"target\"}, ...]")
        }
        return try items.enumerated().map { (offset, item) throws(PolicyError) in
            func field(_ key: String, required: Bool) throws(PolicyError) -> String {
                switch item.member(key) {
                case .string(let text)?: return text
                case nil where !required, .null? where !required: return ""
                default:
                    throw PolicyError(.invalidInput, "call \(offset + 1): '\(key)' is missing or not a string", file: file,
                                      expected: "a string")
                }
            }
            let (service, argument) = (try field("service", required: true), try field("argument", required: false))
            let (source, target) = (try field("source", required: true), try field("target", required: false))
            let requested = try field("requested_source", required: false)
            return argument.isEmpty
                ? Call(serviceAndArgument: service, source: source, target: target, requestedSource: requested)
                : Call(service: service, argument: argument, source: source, target: target, requestedSource: requested)
        }
    }
}

/// Where qrexec runs an allowed call to a remote qube: in its relay qube,
/// as the transport service (`TRANSPORT+TARGET+SERVICE+ARGUMENT`).
public struct Relay: Sendable, Hashable {
    /// The relay qube.
    public var qube: String
    /// The service the relay runs.
    public var service: String
}

/// What dom0 answers to a call, and which rule decided it.
public struct Decision: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// Run the call in `target` (`dom0`, a qube, or `@dispvm:TEMPLATE`).
        case allow(target: String, user: String?, notify: Bool, autostart: Bool)
        /// Prompt the user with `targets` (sorted by code point), `defaultTarget` preselected.
        case ask(targets: AskChoices, defaultTarget: String?, user: String?, notify: Bool, autostart: Bool)
        /// Refuse the call.
        case deny(reason: String, notify: Bool)
        /// The reference evaluator fails on this call (docs/qrexec-policy.md, "Deny and error"); the call
        /// does not happen.
        case error(reason: String)
    }

    public var outcome: Outcome
    /// The rule that decided, if one did.
    public var rule: Rule?
    /// The intended target after normalisation (`@default` for an empty or unknown one), if it was valid.
    public var requestedTarget: String?
    /// For an allow to a remote qube: where the call really goes.
    public var relay: Relay?

    public init(outcome: Outcome, rule: Rule? = nil, requestedTarget: String? = nil, relay: Relay? = nil) {
        self.outcome = outcome
        self.rule = rule
        self.requestedTarget = requestedTarget
        self.relay = relay
    }

    /// The answer to every call while the policy does not load.
    public static func loadFailure(_ error: PolicyError) -> Decision {
        Decision(outcome: .deny(reason: "policy failed to load, every call is denied: \(error)", notify: true))
    }

    /// `allow`, `ask`, `deny` or `error`.
    public var name: String {
        switch outcome {
        case .allow: return "allow"
        case .ask: return "ask"
        case .deny: return "deny"
        case .error: return "error"
        }
    }

    /// One line for people: the outcome, then the deciding rule.
    public var summary: String {
        var text: String
        switch outcome {
        case .allow(let target, let user, let notify, let autostart):
            text = "allow -> \(target)" + (relay.map { " via \($0.qube) as \($0.service)" } ?? "") + " (user \(user ?? "DEFAULT"), notify \(notify ? "yes" : "no"), autostart \(autostart ? "yes" : "no"))"
        case .ask(let targets, let defaultTarget, let user, let notify, let autostart):
            text = "ask {\(targets.joined(separator: ", "))}" + (defaultTarget.map { " default \($0)" } ?? "")
                + " (user \(user ?? "DEFAULT"), notify \(notify ? "yes" : "no"), autostart \(autostart ? "yes" : "no"))"
        case .deny(let reason, let notify):
            text = "deny: \(reason)" + (notify ? "" : " (no notification)")
        case .error(let reason):
            text = "error: \(reason)"
        }
        if let rule { text += " [\(rule.origin): \(rule)]" }
        return text
    }
}
