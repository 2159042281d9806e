/// The choices of an ask prompt (docs/qrexec-policy.md, "Ask choices").
extension PolicyEvaluator {
    /// Why the reference evaluator fails on a call.
    struct CollectionError: Error {
        var reason: String
    }

    /// The choices of an ask without `target=`, in code-point order.
    ///
    /// The reference walks the matching rules from last to first, adding the
    /// expansion of allow and ask rules and removing that of deny rules. So
    /// each choice is decided by the first rule (in load order) whose
    /// expansion holds it; this walks forward and stops expanding once every
    /// possible choice is decided. A source the system does not have fails
    /// the call, as the reference's lookup of its uuid does.
    func collectChoices(source: Source, candidates: [Int32], argument: Int32) -> Result<[String], CollectionError> {
        guard source.index >= 0 else { return .failure(CollectionError(reason: "'\(source.name)'")) }
        let count = system.qubes.count
        // Slots: qube i, then @dispvm:i at count + i, then @dispvm at 2 * count.
        // Per slot: 0 undecided, 1 included, 2 removed.
        var state = [UInt8](repeating: 0, count: 2 * count + 1)
        var undecided = state.count
        func offer(_ slot: Int, _ include: Bool) {
            guard state[slot] == 0 else { return }
            state[slot] = include ? 1 : 2
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
                for index in 0..<count where matchesTarget(bound.offer, .qube(Int32(index)), source: source.index) {
                    offer(index, include)
                }
            case .dispVM:
                offer(2 * count, include)
            case .dispVMTemplate(let index):
                if system.qubes[Int(index)].templateForDispVMs { offer(count + Int(index), include) }
            case .dispVMTag(let tag):
                for index in 0..<count where isDispVMTemplate(Int32(index), tagged: tag) { offer(count + index, include) }
            case .default, .never, .unknownQube, .missingDispVMTemplate:
                break
            }
        }
        if state[2 * count] == 1 {
            let template = defaultDispVMOf[Int(source.index)]
            if template >= 0 { state[count + Int(template)] = 1 }
        }
        var choices: [String] = []
        for slot in choiceOrder where state[Int(slot)] == 1 {
            let index = Int(slot) % count
            guard !system.qubes[index].isInternal else { continue }
            if Int(slot) < count {
                if Int32(index) != source.index { choices.append(system.qubes[index].name) }
            } else {
                choices.append(dispVMNames[index])
            }
        }
        return .success(choices)
    }
}
