import QrexecPolicy

/// The qrexec policy and system-info targets.
let policyTargets = [
    FuzzTarget(
        name: "policy",
        property: "a policy file (NUL, then an included file) that loads decides a few calls the same way twice, "
            + "each allow or ask by one of its rules and to a qube that exists; one that is refused denies every call",
        run: policyFiles),
    FuzzTarget(
        name: "system-info",
        property: "a system-info JSON that parses finds every qube by its name, and a fixed policy decides calls "
            + "between its qubes the same way twice, each allow to a qube that exists; a refusal is a PolicyError",
        run: systemInfo),
]

/// The system (Fuzz/Data/system-info.json), the fixed policy (Fuzz/Data/fixed.policy) and the calls.
let policyData: (system: SystemInfo, policy: Policy, calls: [Call]) = {
    do {
        let system = try SystemInfo(json: dataFile("system-info.json"))
        let files = MemoryPolicyFiles(["/policy/50-fixed.policy": String(decoding: dataFile("fixed.policy"), as: UTF8.self)])
        let policy = try PolicyLoader(directories: ["/policy"], fileSystem: files).policy()
        return (system, policy, try Call.list(json: dataFile("calls.json")))
    } catch {
        fatalError("Fuzz/Data's policy files do not load: \(error)")
    }
}()

/// Checks the decisions of `calls` (each twice) against `policy` and `system`.
func checkDecisions(_ policy: Policy, _ system: SystemInfo, _ calls: [Call]) {
    let evaluator = PolicyEvaluator(policy: policy, system: system)
    func exists(_ target: String) -> Bool {
        // A system may even name a qube `@dispvm:x` (system-info is not checked for qube names).
        if system.index(named: target) != nil || target == "dom0" { return true }
        return target.hasPrefix("@dispvm:") && system.index(named: String(target.dropFirst("@dispvm:".count))) != nil
    }
    for call in calls {
        let decision = evaluator.evaluate(call)
        require(evaluator.evaluate(call) == decision, "\(call): two evaluations differ")
        switch decision.outcome {
        case .allow(let target, _, _, _):
            require(decision.rule.map(policy.rules.contains) == true, "\(call): an allow by no rule of the policy")
            require(exists(target) || decision.relay != nil, "\(call): allowed to '\(target)', which does not exist")
        case .ask(let targets, _, _, _, _):
            require(decision.rule.map(policy.rules.contains) == true, "\(call): an ask by no rule of the policy")
            // The reference asks for a rule's own `target=` even when no such qube exists (lint warns).
            var named: String?
            if case .ask(let target?, _, _, _, _) = decision.rule?.action { named = target.description }
            require(targets.allSatisfy { exists($0) || $0 == named }, "\(call): asks for a target that does not exist: \(targets)")
        case .deny, .error:
            break
        }
    }
}

func policyFiles(_ bytes: [UInt8]) {
    let files = parts(bytes, 2)
    var memory = MemoryPolicyFiles()
    memory.files["/etc/qubes/policy.d/30-fuzz.policy"] = files[0]
    if files.count > 1 { memory.files["/etc/qubes/policy.d/include/fuzz"] = files[1] }
    let loader = PolicyLoader(
        directories: ["/etc/qubes/policy.d"], legacyDirectory: "/etc/qubes-rpc/policy",
        limits: PolicyLimits(maxFileSize: 1 << 20, maxLineLength: 64 << 10, maxIncludeDepth: 16, maxFiles: 64), fileSystem: memory)
    let load = loader.load()
    do {
        let policy = try loader.policy()
        require(load.errors.isEmpty, "policy() accepts a policy whose load has errors")
        checkDecisions(policy, policyData.system, policyData.calls)
    } catch {
        require(!load.errors.isEmpty, "policy() refuses a policy whose load has no errors")
        guard case .deny = Decision.loadFailure(error).outcome else { return require(false, "a refused policy does not deny") }
    }
}

func systemInfo(_ bytes: [UInt8]) {
    let system: SystemInfo
    do {
        system = try SystemInfo(json: bytes, file: "system-info.json")
    } catch {
        return
    }
    for (index, qube) in system.qubes.enumerated() {
        require(system.index(named: qube.name) == index, "qube '\(qube.name)' is not found by its name")
    }
    let names = ["dom0", "@adminvm", "@default", "@dispvm"] + system.qubes.prefix(6).map(\.name)
    var calls = policyData.calls
    for source in names.prefix(6) {
        for target in names { calls.append(Call(service: "lq.Fuzz", source: source, target: target)) }
    }
    checkDecisions(policyData.policy, system, calls)
}
