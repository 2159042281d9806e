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
    func collectChoices(source: Source, candidates: [Int32], argument: Int32) -> Result<AskChoices, CollectionError> {
        guard source.index >= 0 else { return .failure(CollectionError(reason: "'\(source.name)'")) }
        var state = ChoiceState(slots)
        for position in candidates {
            let bound = rules[Int(position)]
            guard bound.argument == -1 || bound.argument == argument, matchesSource(bound.source, source) else { continue }
            if case .missingDispVMTemplate(let name) = bound.offer {
                return .failure(CollectionError(reason: "'\(name)'"))
            }
            guard state.undecided > 0 else { continue }
            let include = !bound.isDeny
            switch bound.offer {
            case .any:
                state.offer(slots.any, include)
                state.offerDispVM(include)
            case .anyVM:
                state.offer(slots.anyVM, include)
                state.offerDispVM(include)
            case .adminVM:
                if adminVM >= 0 { state.offer(rank: slots.qube(adminVM), include) }
            case .qube(let index):
                state.offer(rank: slots.qube(index), include)
            case .type(let type):
                state.offer(slots.typed[Int(type)], include)
            case .tag(let tag):
                state.offer(slots.tagged[Int(tag)], include)
            case .dispVM:
                state.offerDispVM(include)
            case .dispVMTemplate(let index):
                if system.qubes[Int(index)].templateForDispVMs { state.offer(rank: slots.dispVM(index), include) }
            case .dispVMTag(let tag):
                state.offer(slots.dispVMTagged[Int(tag)], include)
            case .default, .never, .unknownQube, .missingDispVMTemplate:
                break
            }
        }
        if state.dispVMIncluded {
            let template = defaultDispVMOf[Int(source.index)]
            if template >= 0 { state.include(rank: slots.dispVM(template)) }
        }
        state.exclude(rank: slots.qube(source.index))
        return .success(state.shown(slots))
    }
}

/// The ask slots of a system, numbered by rank: qube `i` is slot `i` and
/// `@dispvm:` of qube `i` slot `count + i`, ranked in code-point order of
/// their text, so a set of ranks read in order gives sorted choices. Sets
/// are bit words (docs/qrexec-policy.md, "Ask choices").
struct ChoiceSlots: Sendable {
    /// The text of every slot (a qube's name, `@dispvm:NAME`), in rank order.
    let table: NameTable
    /// The rank of every slot.
    let rankOf: [Int32]
    /// What `@anyvm` offers (every qube but dom0, and `@dispvm:` of the disposable templates),
    /// what `*` offers (the same with dom0), and the ranks a prompt may show (not `internal`).
    let anyVM: [UInt64], any: [UInt64], shown: [UInt64]
    /// What `@tag:T` offers (the qubes tagged T), `@type:T` (the qubes of type T) and
    /// `@dispvm:@tag:T` (`@dispvm:` of the disposable templates tagged T), by tag or type number:
    /// for the tokens some rule offers, empty for the others.
    let tagged: [[UInt64]], typed: [[UInt64]], dispVMTagged: [[UInt64]]
    /// How many slots a rule can decide, `@dispvm` included.
    let offerable: Int

    /// The slots of `qubes`, whose tags and types the evaluator numbered (`tagsOf`, `typeOf`:
    /// `tagCount` and `typeCount` numbers), for rules offering `offers`.
    init(_ qubes: [QubeInfo], adminVM: Int32, tagsOf: [[Int32]], tagCount: Int, typeOf: [Int32], typeCount: Int,
         offers: Set<PolicyEvaluator.Matcher>) {
        let count = qubes.count
        let texts = qubes.map { Array($0.name.utf8) } + qubes.map { Array(("@dispvm:" + $0.name).utf8) }
        let order = (0..<2 * count).sorted { texts[$0].lexicographicallyPrecedes(texts[$1]) }
        table = NameTable(order.map { $0 < count ? qubes[$0].name : "@dispvm:" + qubes[$0 - count].name })
        var rankOf = [Int32](repeating: 0, count: 2 * count)
        for (rank, slot) in order.enumerated() { rankOf[Int(slot)] = Int32(rank) }
        self.rankOf = rankOf
        let words = (2 * count + 63) / 64
        var any = [UInt64](repeating: 0, count: words), shown = any
        var tagged = [[UInt64]](repeating: [], count: tagCount), dispVMTagged = tagged
        var typed = [[UInt64]](repeating: [], count: typeCount)
        for offer in offers {
            switch offer {
            case .tag(let tag): tagged[Int(tag)] = any
            case .type(let type): typed[Int(type)] = any
            case .dispVMTag(let tag): dispVMTagged[Int(tag)] = any
            default: break
            }
        }
        func setIfOffered(_ bits: inout [UInt64], _ slot: Int) { if !bits.isEmpty { set(&bits, slot) } }
        func set(_ bits: inout [UInt64], _ slot: Int) {
            let rank = Int(rankOf[slot])
            bits[rank >> 6] |= 1 << UInt64(rank & 63)
        }
        var offerable = 1
        for (index, qube) in qubes.enumerated() {
            set(&any, index)
            setIfOffered(&typed[Int(typeOf[index])], index)
            for tag in tagsOf[index] { setIfOffered(&tagged[Int(tag)], index) }
            offerable += 1
            if qube.templateForDispVMs {
                set(&any, count + index)
                for tag in tagsOf[index] { setIfOffered(&dispVMTagged[Int(tag)], count + index) }
                offerable += 1
            }
            if !qube.isInternal {
                set(&shown, index)
                set(&shown, count + index)
            }
        }
        var anyVM = any
        if adminVM >= 0 {
            let rank = Int(rankOf[Int(adminVM)])
            anyVM[rank >> 6] &= ~(1 << UInt64(rank & 63))
        }
        (self.any, self.anyVM, self.shown, self.offerable) = (any, anyVM, shown, offerable)
        (self.tagged, self.typed, self.dispVMTagged) = (tagged, typed, dispVMTagged)
    }

    func qube(_ index: Int32) -> Int { Int(rankOf[Int(index)]) }

    func dispVM(_ index: Int32) -> Int { Int(rankOf[rankOf.count / 2 + Int(index)]) }
}

/// Which slots the rules walked so far decided, and which of those they included.
struct ChoiceState {
    private var decided: [UInt64]
    private var included: [UInt64]
    private var dispVMDecided = false
    private(set) var dispVMIncluded = false
    /// Offerable slots still undecided: none left means no rule can change the choices.
    private(set) var undecided: Int

    init(_ slots: ChoiceSlots) {
        decided = [UInt64](repeating: 0, count: slots.any.count)
        included = decided
        undecided = slots.offerable
    }

    /// Decides every undecided rank of `mask`.
    mutating func offer(_ mask: [UInt64], _ include: Bool) {
        for word in mask.indices {
            let fresh = mask[word] & ~decided[word]
            guard fresh != 0 else { continue }
            decided[word] |= fresh
            if include { included[word] |= fresh }
            undecided -= fresh.nonzeroBitCount
        }
    }

    mutating func offer(rank: Int, _ include: Bool) {
        let bit: UInt64 = 1 << UInt64(rank & 63)
        guard decided[rank >> 6] & bit == 0 else { return }
        decided[rank >> 6] |= bit
        if include { included[rank >> 6] |= bit }
        undecided -= 1
    }

    mutating func offerDispVM(_ include: Bool) {
        guard !dispVMDecided else { return }
        dispVMDecided = true
        dispVMIncluded = include
        undecided -= 1
    }

    mutating func include(rank: Int) { included[rank >> 6] |= 1 << UInt64(rank & 63) }

    mutating func exclude(rank: Int) { included[rank >> 6] &= ~(1 << UInt64(rank & 63)) }

    /// The included slots a prompt may show, in rank order.
    func shown(_ slots: ChoiceSlots) -> AskChoices {
        var count = 0
        for word in included.indices { count += (included[word] & slots.shown[word]).nonzeroBitCount }
        var ranks: [Int32] = []
        ranks.reserveCapacity(count)
        for word in included.indices {
            var bits = included[word] & slots.shown[word]
            while bits != 0 {
                ranks.append(Int32(word << 6 | bits.trailingZeroBitCount))
                bits &= bits - 1
            }
        }
        return AskChoices(table: slots.table, ranks: ranks)
    }
}
