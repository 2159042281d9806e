import LQCommon
import QrexecPolicy
import Testing

/// Comparing a decision with the reference evaluator's answer to the same query.
enum ReferenceAnswer {
    /// The decision, targets, choices and parameters agree with `expected`, and so
    /// does the rule that decided (file, line, action). An answer of stage `load`
    /// means the policy does not load: lq must deny with a load error.
    static func check(_ decision: Decision, _ expected: JSONValue, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        if expected["stage"]?.text == "load" {
            #expect(decision.name == "deny", sourceLocation: sourceLocation)
            #expect(decision.rule == nil, sourceLocation: sourceLocation)
            return
        }
        #expect(decision.name == expected["decision"]?.text, sourceLocation: sourceLocation)
        switch decision.outcome {
        case .allow(let target, let user, let notify, let autostart):
            #expect(target == expected["target"]?.text, sourceLocation: sourceLocation)
            #expect(user == expected["user"]?.text, sourceLocation: sourceLocation)
            #expect(notify == expected["notify"]?.bool, sourceLocation: sourceLocation)
            #expect(autostart == expected["autostart"]?.bool, sourceLocation: sourceLocation)
            let response = expected["daemon_response"]?.strings ?? []
            let service = response.first { $0.hasPrefix("service=") }.map { String($0.dropFirst("service=".count)) }
            let qube = response.first { $0.hasPrefix("target=") }.map { String($0.dropFirst("target=".count)) }
            #expect(decision.relay?.service == service, sourceLocation: sourceLocation)
            if service != nil { #expect(decision.relay?.qube == qube, sourceLocation: sourceLocation) }
        case .ask(let targets, let defaultTarget, let user, let notify, let autostart):
            #expect(Array(targets) == expected["targets"]?.strings, sourceLocation: sourceLocation)
            #expect(defaultTarget == expected["default_target"]?.text, sourceLocation: sourceLocation)
            #expect(user == expected["user"]?.text, sourceLocation: sourceLocation)
            #expect(notify == expected["notify"]?.bool, sourceLocation: sourceLocation)
            #expect(autostart == expected["autostart"]?.bool, sourceLocation: sourceLocation)
        case .deny(_, let notify):
            #expect(notify == expected["notify"]?.bool, sourceLocation: sourceLocation)
        case .error:
            break
        }
        if let rule = expected["rule"] {
            let file = try #require(rule["file"]?.text, sourceLocation: sourceLocation)
            #expect(decision.rule?.origin.file.hasSuffix("/" + file) == true, "rule file \(String(describing: decision.rule?.origin))",
                    sourceLocation: sourceLocation)
            #expect(decision.rule?.origin.line == rule["line"]?.int, sourceLocation: sourceLocation)
            #expect(decision.rule?.action.name == rule["action"]?.text, sourceLocation: sourceLocation)
        } else {
            #expect(decision.rule == nil, sourceLocation: sourceLocation)
        }
        #expect(decision.requestedTarget == expected["requested_target"]?.text, sourceLocation: sourceLocation)
    }
}
