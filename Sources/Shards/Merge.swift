import LQCommon
import QubesStore
import SystemLayer

/// Options of `ShardMerge.merge`.
public struct MergeOptions: Sendable {
    /// The qids shard qubes get (`--qid-range`); the main store stays below.
    public var qidRange: ClosedRange<Int>
    public var sanitize: SanitizeOptions
    /// A uniform pick from a range; the system CSPRNG unless a test injects one.
    public var random: @Sendable (ClosedRange<Int>) -> Int

    public init(
        qidRange: ClosedRange<Int> = shardQIDRange, sanitize: SanitizeOptions = SanitizeOptions(),
        random: @escaping @Sendable (ClosedRange<Int>) -> Int = QIDAllocator.systemRandom
    ) {
        self.qidRange = qidRange
        self.sanitize = sanitize
        self.random = random
    }
}

/// What merge did with one shard.
public struct ShardMergeReport: Sendable {
    public var root: String
    public var name: String?
    /// Qubes merged, by name.
    public var merged: [String] = []
    /// Qubes left out (name conflict, refused value, loader error), each naming the qube.
    public var skipped: [ShardIssue] = []
    /// Pools left out.
    public var refusedPools: [ShardIssue] = []
    /// Every change made by sanitizing.
    public var changes: [ShardChange] = []
    /// Every recovered reference; each such qube got `prohibit-start`.
    public var recoveries: [ShardChange] = []
    /// What the parser ignored.
    public var notices: [ShardIssue] = []
    /// Why the whole shard was skipped.
    public var error: ShardIssue?

    public var json: JSONValue {
        .object([
            "root": .string(root), "name": name.map(JSONValue.string) ?? .null, "merged": .array(merged.map(JSONValue.string)),
            "skipped": .array(skipped.map(\.json)), "refused_pools": .array(refusedPools.map(\.json)),
            "changes": .array(changes.map(\.json)), "recoveries": .array(recoveries.map(\.json)),
            "notices": .array(notices.map(\.json)), "error": error?.json ?? .null,
        ])
    }
}

/// What merge did.
public struct MergeReport: Sendable {
    public var shards: [ShardMergeReport] = []
    /// Main-store qubes whose qid lies in the shard range.
    public var mainQIDsInRange: [StoreFinding] = []

    public var json: JSONValue {
        .object([
            "shards": .array(shards.map(\.json)),
            "main_qids_in_range": .array(mainQIDsInRange.map { .string($0.description) }),
        ])
    }
}

/// The merged store, its canonical bytes and the report.
public struct MergeResult: Sendable {
    public var store: Store
    public var bytes: [UInt8]
    public var report: MergeReport
}

/// Merge (attach): main store + shards → the store qubesd loads (docs/shards.md, "Merge rules").
public enum ShardMerge {
    /// Merges `shards` into `main`. A shard or qube that breaks a rule is
    /// skipped and reported; nothing of a main qube is changed.
    /// - Throws: `ShardIssue` only when the merged store cannot be written or
    ///   loaded for a reason no shard qube is named for.
    public static func merge(main: Store, shards: [ShardSource], options: MergeOptions = MergeOptions()) throws -> MergeResult {
        var merger = Merger(main: main, options: options)
        for source in shards { merger.add(source) }
        return try merger.finish()
    }

    /// `merge` for the main store as qubesd saved it: loading it runs
    /// alongside `readShards`.
    /// - Throws: `StoreError` when the main store does not load, else as `merge`.
    public static func merge(
        mainBytes: [UInt8], shards readShards: @escaping @Sendable () -> [ShardSource], options: MergeOptions = MergeOptions()
    ) throws -> MergeResult {
        let (shards, main) = try concurrently(readShards, { try Store.load(xml: mainBytes).store })
        return try merge(main: main, shards: shards, options: options)
    }

    /// What `merge` gives for `main` and `shards`, with qids picked without
    /// randomness (they play no part in what is merged). Split replays merge
    /// to learn what it made of each shard qube and which ones it left out.
    /// - Throws: `ShardIssue` as `merge` does.
    /// The loader sees only the shard qubes and the qubes they name, so the
    /// result's store holds just those.
    static func replay(main: Store, shards: [Shard], options: MergeOptions) throws -> MergeResult {
        var options = options
        options.random = { $0.lowerBound }
        var merger = Merger(main: main, options: options)
        merger.loadsShardQubesOnly = true
        for shard in shards { merger.add(ShardSource(root: shard.root, shard: .success(shard))) }
        return try merger.finish()
    }

    /// Why merge left out the qube `name` of `file`, from the report of its
    /// shard; `nil` when merge merged it.
    static func leftOut(_ name: String, file: String, in report: ShardMergeReport) -> ShardIssue? {
        let named = { (qube: String?) in ExactString(qube ?? "") == ExactString(name) }
        if let issue = report.skipped.first(where: { $0.file == file && named($0.qube) }) { return issue }
        guard !report.merged.contains(where: named) else { return nil }
        var issue = report.error ?? ShardIssue("not merged")
        issue.file = file
        issue.qube = name
        return issue
    }
}

/// A shard qube that passed the per-qube rules: sanitized, with its file version.
private struct Candidate {
    var domain: Domain
    var original: Domain
    var file: String
}

private struct Merger {
    let main: Store
    let options: MergeOptions
    var store: Store
    var report = MergeReport()
    /// Names, uuids, volumes and addresses of the main store and the shard qubes so far.
    var taken: ShardRules.Taken
    var poolNames = Set<String>()
    var shardNames = Set<String>()
    var allocator: QIDAllocator
    /// Shard qube name → index of its report and its file.
    var owner: [ExactString: (report: Int, file: String)] = [:]
    /// Load only what decides about the shard qubes (a replay), not the whole store.
    var loadsShardQubesOnly = false

    init(main: Store, options: MergeOptions) {
        self.main = main
        self.options = options
        store = main
        let domains = main.domains
        taken = ShardRules.Taken(main: main)
        for domain in domains {
            if options.qidRange.contains(domain.qid) {
                report.mainQIDsInRange.append(
                    StoreFinding(
                        qube: domain.name, field: "qid", value: String(domain.qid),
                        message: "main-store qid in the shard range \(options.qidRange.lowerBound)..\(options.qidRange.upperBound)"))
            }
        }
        allocator = QIDAllocator(range: options.qidRange, used: domains.map(\.qid), random: options.random)
    }

    mutating func add(_ source: ShardSource) {
        var shardReport = ShardMergeReport(root: source.root)
        defer { report.shards.append(shardReport) }
        let shard: Shard
        switch source.shard {
        case .failure(let issue):
            shardReport.error = issue
            return
        case .success(let read):
            shard = read
        }
        shardReport.name = shard.name
        guard shardNames.insert(shard.name).inserted else {
            shardReport.error = ShardIssue("another shard has the same name", file: source.root, field: "name", value: shard.name)
            return
        }
        shardReport.notices = shard.documents.flatMap(\.file.notices)
        var rules = ShardRules(main: main)
        for document in shard.documents {
            for pool in document.file.pools {
                do throws(ShardIssue) {
                    try rules.checkPool(pool, taken: poolNames.union(rules.shardPools.keys))
                    rules.shardPools[pool.name] = pool
                } catch {
                    var issue = error
                    issue.file = document.path
                    shardReport.refusedPools.append(issue)
                }
            }
        }
        var candidates: [Candidate] = []
        for (index, domain) in shard.domains {
            let file = shard.documents[index].path
            do throws(ShardIssue) {
                try rules.checkIdentity(domain)
                try taken.checkUnique(domain)
                let (sanitized, changes) = ShardSanitizer.sanitize(domain, shard: shard.name, options: options.sanitize)
                shardReport.changes += changes
                taken.claim(domain, volumes: false)
                candidates.append(Candidate(domain: sanitized, original: domain, file: file))
            } catch {
                var issue = error
                issue.file = file
                shardReport.skipped.append(issue)
            }
        }
        accept(candidates, rules: rules, shard: shard.name, into: &shardReport)
    }

    /// Recovery and volume checks until no candidate is refused any more
    /// (refusing one may break references of another).
    mutating func accept(_ initial: [Candidate], rules: ShardRules, shard: String, into shardReport: inout ShardMergeReport) {
        let files = Dictionary(initial.map { (ExactString($0.domain.name), $0.file) }, uniquingKeysWith: { first, _ in first })
        var candidates = initial
        var accepted: [Domain] = []
        var recoveries: [ShardChange] = []
        var refused = true
        while refused {
            refused = false
            let local = Dictionary(candidates.map { (ExactString($0.domain.name), $0.domain) }, uniquingKeysWith: { first, _ in first })
            let available: (String) -> Domain? = { name in self.main[name] ?? local[ExactString(name)] }
            var takenVIDs = taken.vids
            accepted = []
            recoveries = []
            for candidate in candidates {
                var result = candidate.domain
                do throws(ShardIssue) {
                    let changes = try rules.recover(&result, from: candidate.original, available: available)
                    let templateRecovered = changes.contains { $0.field == "property.template" }
                    try rules.checkVolumes(&result, templateRecovered: templateRecovered, available: available, vids: &takenVIDs)
                    recoveries += changes
                    accepted.append(result)
                } catch {
                    var issue = error
                    issue.file = candidate.file
                    shardReport.skipped.append(issue)
                    candidates.removeAll { ExactString($0.domain.name) == ExactString(candidate.domain.name) }
                    refused = true
                    break
                }
            }
        }
        shardReport.recoveries = recoveries
        let reportIndex = report.shards.count
        for var domain in accepted {
            guard let qid = allocator.next() else {
                shardReport.skipped.append(ShardIssue(
                    "no free qid left in the shard range", file: files[ExactString(domain.name)], qube: domain.name, field: "qid"))
                continue
            }
            domain.qid = qid
            domain.tags.append(ExactString(ShardSanitizer.tag(ofShard: shard)))
            for volume in domain.volumes { taken.vids.insert(VolumeKey(volume)) }
            do {
                try store.insert(domain)
                owner[ExactString(domain.name)] = (reportIndex, files[ExactString(domain.name)] ?? "")
                shardReport.merged.append(domain.name)
            } catch {
                shardReport.skipped.append(ShardIssue(
                    (error as? StoreError)?.message ?? "\(error)", file: files[ExactString(domain.name)], qube: domain.name,
                    field: "name", value: domain.name))
            }
        }
        for pool in rules.shardPools.values {
            store.pools[pool.name] = pool
            poolNames.insert(pool.name)
        }
    }

    /// Writes and loads the merged store as qubesd would; a shard qube the
    /// loader refuses is left out and reported.
    mutating func finish() throws -> MergeResult {
        // The GUI and audio tags the loader would add, added now: then the
        // loader usually changes nothing and the bytes are written once.
        for name in owner.keys {
            guard let domain = store[name.value] else { continue }
            let tags = store.maintainedTags(of: domain)
            if tags != domain.tags { store.update(name.value) { $0.tags = tags } }
        }
        while true {
            let loaded: LoadedStore
            let written = try XMLWriter.write(loadsShardQubesOnly ? Self.restricted(store, to: owner.keys.map(\.value)) : store)
            do {
                loaded = try Store.load(xml: written)
            } catch let error as StoreError {
                guard let qube = error.qube, let (index, file) = owner.removeValue(forKey: ExactString(qube)) else {
                    throw ShardIssue(error, file: nil)
                }
                store.remove(qube)
                report.shards[index].merged.removeAll { ExactString($0) == ExactString(qube) }
                report.shards[index].skipped.append(ShardIssue(
                    "refused by the store loader: " + error.message, file: file, qube: qube, field: error.field ?? "qube",
                    value: error.value))
                continue
            }
            for note in loaded.notes {
                guard let qube = note.finding.qube, let (index, file) = owner[ExactString(qube)] else { continue }
                report.shards[index].notices.append(ShardIssue(
                    "the store loader: " + note.finding.message, file: file, qube: qube, field: note.finding.field,
                    value: note.finding.value))
            }
            // The loader normalizes values; the bytes are rewritten only when it changed something
            // (a replay's bytes are never used).
            let bytes = loadsShardQubesOnly || Self.sameContent(loaded.store, store) ? written : try XMLWriter.write(loaded.store)
            return MergeResult(store: loaded.store, bytes: bytes, report: report)
        }
    }

    /// `store` with only `qubes`, dom0 and every qube they or the global
    /// properties name (any property value or `preload-dispvm` entry that is a
    /// qube's name), transitively: all the loader looks at when it decides
    /// about `qubes`. Naming more than needed is harmless.
    static func restricted(_ store: Store, to qubes: [String]) -> Store {
        var kept = Set<ExactString>()
        var pending = qubes + store.globalProperties.values + [store.adminVM?.name].compactMap { $0 }
        while let name = pending.popLast() {
            guard let domain = store[name], kept.insert(ExactString(domain.name)).inserted else { continue }
            pending += domain.properties.values
            pending += domain.features["preload-dispvm"].map { $0.split(separator: " ").map(String.init) } ?? []
        }
        var result = store
        for domain in store.domains where !kept.contains(ExactString(domain.name)) { result.remove(domain.name) }
        return result
    }

    /// Whether two stores hold the same pools, global properties and qubes
    /// (so that they are written as the same bytes).
    static func sameContent(_ lhs: Store, _ rhs: Store) -> Bool {
        guard lhs.count == rhs.count, lhs.pools == rhs.pools, lhs.globalProperties == rhs.globalProperties,
            lhs.noneGlobalProperties == rhs.noneGlobalProperties, lhs.sortedLabels == rhs.sortedLabels
        else { return false }
        return lhs.domainsByQID.allSatisfy { left in
            guard let right = rhs[qid: left.qid] else { return false }
            return left.vmClass == right.vmClass && left.name.utf8.elementsEqual(right.name.utf8)
                && left.uuid == right.uuid && left.properties == right.properties && left.noneProperties == right.noneProperties
                && left.features == right.features && left.tags == right.tags && left.devices == right.devices
                && left.volumes == right.volumes
        }
    }
}
