/// What the matched rule's action makes of the call (docs/qrexec-policy.md, "Evaluation", step 3).
extension PolicyEvaluator {
    func apply(_ rule: Rule, call: Call, requested: Requested, spelling: String, source: Source, candidates: [Int32],
               argument: Int32) -> Decision {
        switch rule.action {
        case .deny(let notify):
            return Decision(outcome: .deny(reason: "denied by policy \(rule.origin)", notify: notify))
        case .allow(let redirect, let user, let notify, let autostart):
            return allow(rule, call: call, redirect: redirect, requested: requested, spelling: spelling, source: source,
                         user: user, notify: notify, autostart: autostart)
        case .ask(let redirect, let defaultTarget, let user, let notify, let autostart):
            var choices: AskChoices
            if let redirect {
                choices = [Self.isDom0(redirect) ? "dom0" : redirect.description]
            } else {
                switch collectChoices(source: source, candidates: candidates, argument: argument) {
                case .success(let collected): choices = collected
                case .failure(let error): return Decision(outcome: .error(reason: error.reason))
                }
            }
            if !autostart {
                do throws(CollectionError) {
                    choices = try choices.filter { (choice) throws(CollectionError) in try runsWithoutStart(choice).get() }
                } catch {
                    return Decision(outcome: .error(reason: error.reason))
                }
            }
            guard !choices.isEmpty else {
                return Decision(outcome: .deny(
                    reason: "policy define 'ask' action at \(rule.origin) but no target is available to choose from", notify: true))
            }
            var preselected: String?
            switch defaultTarget {
            case .dispVM?: preselected = source.index >= 0 ? system.qubes[Int(source.index)].defaultDispVM.map { "@dispvm:" + $0 } : nil
            case let token? where Self.isDom0(token): preselected = "dom0"
            case let token?: preselected = token.description
            case nil: break
            }
            if let chosen = preselected, !choices.contains(where: { $0.isBytes(chosen) }) { preselected = nil }
            return Decision(outcome: .ask(targets: choices, defaultTarget: preselected, user: user, notify: notify, autostart: autostart))
        }
    }

    /// `dom0`, `@adminvm` or dom0's `uuid:`, which qrexec treats as one.
    static func isDom0(_ token: Token) -> Bool {
        switch token {
        case .adminVM: return true
        case .qube(let name): return name.isBytes("uuid:" + SystemInfo.adminVMUUID)
        default: return false
        }
    }

    /// Whether an ask choice may be offered with `autostart=no`: dom0, or a running qube; never a
    /// disposable. A choice the system lacks fails the call, as in the reference.
    private func runsWithoutStart(_ choice: String) -> Result<Bool, CollectionError> {
        if choice.isBytes("dom0") || choice.isBytes("@adminvm") || choice.isBytes("uuid:" + SystemInfo.adminVMUUID) {
            return .success(true)
        }
        if choice.utf8.starts(with: "@dispvm".utf8) { return .success(false) }
        guard let index = system.index(named: choice) else {
            return .failure(CollectionError(reason: "autostart=no: '\(choice)' is not in the system"))
        }
        return .success(system.qubes[index].powerState.isBytes("Running"))
    }

    private func allow(_ rule: Rule, call: Call, redirect: Token?, requested: Requested, spelling: String, source: Source,
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
            guard hasDefaultDispVM(source), let name = system.qubes[Int(source.index)].defaultDispVM else {
                return deny("policy define 'allow' action to @dispvm at \(rule.origin) but no DispVM base is set for this VM", true)
            }
            let template = defaultDispVMOf[Int(source.index)]
            guard template >= 0 else { return Decision(outcome: .error(reason: "'\(name)': default_dispvm is not in the system")) }
            target = .dispVMTemplate(template)
            text = "@dispvm:" + name
        case .adminKeyword:
            text = "dom0"
        case .qube, .dispVMTemplate:
            break
        }
        if !autostart {
            let running: Bool
            switch target {
            case .adminKeyword: running = true
            case .qube(let index): running = index == adminVM || system.qubes[Int(index)].powerState.isBytes("Running")
            default: running = false
            }
            guard running else { return deny("target \(text) is denied because it would require autostart", notify) }
        }
        if source.name.isBytes(text) { return deny("loopback qrexec connection not supported", true) }
        var decision = Decision(outcome: .allow(target: text, user: user, notify: notify, autostart: autostart))
        if case .qube(let index) = target, index != adminVM, system.qubes[Int(index)].type.isBytes("RemoteVM") {
            let remote = system.qubes[Int(index)]
            guard let relay = remote.relayVM else { return deny("\(text): relayvm is not set", true) }
            guard let transport = remote.transportRPC else { return deny("\(text): transport RPC is not set", true) }
            guard let relayIndex = system.index(named: relay) else {
                return Decision(outcome: .error(reason: "'\(relay)': the relay of \(text) is not in the system"))
            }
            decision.relay = Relay(qube: system.qubes[relayIndex].name,
                                   service: "\(transport)+\(spelling)+\(call.service)\(call.argument)")
        }
        return decision
    }
}
