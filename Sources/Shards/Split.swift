import LQCommon
import OrderedCollections
import QubesStore
import SystemLayer

/// One shard file as split writes it.
public struct SplitOutput: Sendable {
    public var path: String
    public var bytes: [UInt8]
    /// What the file held before (kept as `domains.xml.prev` when it changes).
    public var previous: [UInt8]
    public var changed: Bool { bytes != previous }
}

/// What split did.
public struct SplitReport: Sendable {
    /// Shard qubes and the file each went to (`field` is the file path).
    public var moved: [ShardChange] = []
    /// Main-store references to shard qubes that were reset.
    public var resets: [ShardChange] = []
    /// Shard qubes merge had left out, written back unchanged.
    public var kept: [ShardIssue] = []
    /// Shard qubes removed while attached.
    public var removed: [ShardIssue] = []
    /// Shards that could not be read; their files are not touched.
    public var errors: [ShardIssue] = []
    /// Files written, in order.
    public var written: [String] = []

    public var json: JSONValue {
        .object([
            "moved": .array(moved.map { .object(["qube": .string($0.qube), "file": .string($0.field)]) }),
            "resets": .array(resets.map(\.json)), "kept": .array(kept.map(\.json)), "removed": .array(removed.map(\.json)),
            "errors": .array(errors.map(\.json)), "written": .array(written.map(JSONValue.string)),
        ])
    }
}

/// The new main store and shard files.
public struct SplitResult: Sendable {
    public var main: Store
    public var mainBytes: [UInt8]
    public var files: [SplitOutput]
    public var report: SplitReport
}

/// Split (detach): merged store → main store + shard files (docs/shards.md, "Split rules").
public enum ShardSplit {
    /// Computes the new main store and shard files; writes nothing.
    /// - Parameters:
    ///   - previousMain: the main store merge started from (the main file, which merge
    ///     does not write): its pools stay in the main store whatever a shard declares,
    ///     and merge is replayed on it to learn what it made of each shard qube, and
    ///     to tell the qubes it left out, written back unchanged, from those removed
    ///     while attached, dropped.
    ///   - shards: the shard roots as they are now (their files are the previous versions).
    ///   - options: the options merge was given: what it withheld and the qubes
    ///     it left out are recomputed with them to be written back (the random
    ///     source is not used).
    /// - Throws: `ShardIssue` when the main store would not load any more.
    public static func split(
        merged: Store, previousMain: Store, shards: [ShardSource], options: MergeOptions = MergeOptions()
    ) throws -> SplitResult {
        var splitter = Splitter(previousMain: previousMain, options: options, shards: shards)
        return try splitter.run(merged: merged, replay: try splitter.replay())
    }

    /// `split` for the merged store as qubesd saved it: loading it runs
    /// alongside the replay of merge.
    /// - Throws: `StoreError` when the merged store does not load, else as `split`.
    public static func split(
        mergedBytes: [UInt8], previousMain: Store, shards: [ShardSource], options: MergeOptions = MergeOptions()
    ) throws -> SplitResult {
        var splitter = Splitter(previousMain: previousMain, options: options, shards: shards)
        let (merged, replay) = try concurrently({ try Store.load(xml: mergedBytes).store }, { try splitter.replay() })
        return try splitter.run(merged: merged, replay: replay)
    }

    /// Writes every changed shard file (keeping `domains.xml.prev`), then the
    /// main store, each atomically. Returns the paths written.
    /// - Throws: `ShardIssue` naming the file that failed and the files already written;
    ///   every file is then either its old or its new version.
    @discardableResult
    public static func write(_ result: SplitResult, main: StoreFile, fileSystem: any FileSystem = SystemFileSystem()) throws -> [String] {
        try ShardFolder.write(result.files, then: (main, result.mainBytes), fileSystem: fileSystem)
    }

    /// `current` (from the merged store) as its shard file holds it: the
    /// `shard-<name>` tag removed, and `previous` restored wherever the qube
    /// still has what merge produced from it (`merged`, as the store loader
    /// left it). The tags derived from a property changed while attached are
    /// those qubesd derived from the new value.
    static func restore(_ current: Domain, previous: Domain?, merged: Domain?, shard: String) -> Domain {
        var result = current
        result.qid = 0
        let tag = ExactString(ShardSanitizer.tag(ofShard: shard))
        result.tags.remove(tag)
        guard let previous, var merged else { return result }
        merged.tags.remove(tag)
        result.properties = threeWay(previous.properties, merged.properties, result.properties)
        result.features = OrderedDictionary(uniqueKeysWithValues: threeWay(
            Array(previous.features), Array(merged.features), Array(result.features)))
        let tags = threeWay(
            previous.tags.map { ($0, true) }, merged.tags.map { ($0, true) }, result.tags.map { ($0, true) })
        result.tags = OrderedSet(tags.map(\.0))
        for (property, prefix) in Store.derivedTags where result.properties[property] != previous.properties[property] {
            result.tags.removeAll { $0.value.hasPrefix(prefix) && !current.tags.contains($0) }
        }
        result.devices = OrderedDictionary(uniqueKeysWithValues: threeWay(
            Array(previous.devices), Array(merged.devices), Array(result.devices)))
        // Volumes as a whole: the shard file's, unless they changed while attached.
        if current.volumes == merged.volumes { result.volumes = previous.volumes }
        return result
    }

    /// Per key: the previous value where the current one is still the
    /// merged one, else the current one. Order: previous keys, then new ones.
    static func threeWay<Key: Hashable, Value: Equatable>(
        _ previous: some Sequence<(Key, Value)>, _ merged: some Sequence<(Key, Value)>, _ current: some Sequence<(Key, Value)>
    ) -> [(Key, Value)] {
        let mergedValues = Dictionary(Array(merged), uniquingKeysWith: { first, _ in first })
        let currentValues = Dictionary(Array(current), uniquingKeysWith: { first, _ in first })
        var result: [(Key, Value)] = []
        var seen = Set<Key>()
        for (key, value) in previous {
            seen.insert(key)
            if currentValues[key] == mergedValues[key] {
                result.append((key, value))
            } else if let now = currentValues[key] {
                result.append((key, now))
            }
        }
        for (key, value) in current where !seen.contains(key) && mergedValues[key] != value { result.append((key, value)) }
        return result
    }

    static func threeWay<Key: Hashable, Value: Equatable>(_ previous: [Key: Value], _ merged: [Key: Value], _ current: [Key: Value]) -> [Key: Value] {
        Dictionary(uniqueKeysWithValues: threeWay(previous.map { ($0, $1) }, merged.map { ($0, $1) }, current.map { ($0, $1) }))
    }
}

private struct Splitter {
    /// The merged store, losing the shard qubes as they go home.
    var main = Store()
    /// The main store merge started from.
    let previousMain: Store
    let options: MergeOptions
    var shards: [Shard] = []
    var report = SplitReport()

    init(previousMain: Store, options: MergeOptions, shards: [ShardSource]) {
        self.previousMain = previousMain
        self.options = options
        for source in shards {
            switch source.shard {
            case .success(let shard): self.shards.append(shard)
            case .failure(let issue): report.errors.append(issue)
            }
        }
    }

    /// What merge did: merged again from the main store it started from.
    func replay() throws -> MergeResult { try ShardMerge.replay(main: previousMain, shards: shards, options: options) }

    mutating func run(merged: Store, replay: MergeResult) throws -> SplitResult {
        main = merged
        let previousDomains = shards.map(\.domains)
        var previousByUUID: [String: (shard: Int, position: Int)] = [:]
        var shardByTag: [ExactString: Int] = [:]
        var shardByPool: [String: Int] = [:]
        for (index, shard) in shards.enumerated() {
            shardByTag[ExactString(ShardSanitizer.tag(ofShard: shard.name))] = index
            for pool in shard.pools where previousMain.pools[pool.name] == nil && shardByPool[pool.name] == nil {
                shardByPool[pool.name] = index
            }
            for (position, (_, domain)) in previousDomains[index].enumerated() where previousByUUID[domain.uuid] == nil {
                previousByUUID[domain.uuid] = (index, position)
            }
        }
        var outputs = shards.map { $0.documents.map { _ in [Domain]() } }
        /// (shard, position) of every previous qube the merged store still has.
        var claimed = Set<[Int]>()
        var movedNames = Set<ExactString>()
        for domain in main.domains where domain.vmClass != .adminVM {
            var owner: (shard: Int, document: Int, previous: Domain?)?
            if let (index, position) = previousByUUID[domain.uuid],
                options.qidRange.contains(domain.qid)
                    || domain.tags.contains(ExactString(ShardSanitizer.tag(ofShard: shards[index].name)))
            {
                let previous = previousDomains[index][position]
                owner = (index, previous.document, previous.domain)
                claimed.insert([index, position])
            } else if let index = domain.tags.lazy.compactMap({ shardByTag[$0] }).first
                ?? domain.volumes.lazy.compactMap({ shardByPool[$0.pool] }).first
            {
                owner = (index, 0, nil)
            }
            guard let owner else {
                try checkNotAShardQube(domain)
                continue
            }
            let shard = shards[owner.shard]
            let merged = owner.previous.flatMap { previous in
                replay.report.shards[owner.shard].merged.contains { ExactString($0) == ExactString(previous.name) }
                    ? replay.store[previous.name] : nil
            }
            outputs[owner.shard][owner.document].append(
                ShardSplit.restore(domain, previous: owner.previous, merged: merged, shard: shard.name))
            report.moved.append(ShardChange(qube: domain.name, field: shard.documents[owner.document].path, old: nil, new: nil))
            movedNames.insert(ExactString(domain.name))
            main.remove(domain.name)
        }
        for name in shardByPool.keys { main.pools[name] = nil }
        resetReferences(to: movedNames)
        for (index, shard) in shards.enumerated() {
            for (position, (document, domain)) in previousDomains[index].enumerated() where !claimed.contains([index, position]) {
                let file = shard.documents[document].path
                if let reason = ShardMerge.leftOut(domain.name, file: file, in: replay.report.shards[index]) {
                    outputs[index][document].append(domain)
                    report.kept.append(reason)
                } else {
                    report.removed.append(ShardIssue("removed while attached", file: file, qube: domain.name))
                }
            }
        }
        let mainBytes = try XMLWriter.write(main)
        if !report.resets.isEmpty {
            do {
                _ = try Store.load(xml: mainBytes)
            } catch let error as StoreError {
                throw ShardIssue("the main store would not load after resetting references to shard qubes: " + error.message, qube: error.qube, field: error.field, value: error.value)
            }
        }
        var files: [SplitOutput] = []
        for (index, shard) in shards.enumerated() {
            for (document, source) in shard.documents.enumerated() {
                var file = source.file
                file.domains = outputs[index][document]
                files.append(SplitOutput(path: source.path, bytes: try file.bytes(), previous: source.bytes))
            }
        }
        return SplitResult(main: main, mainBytes: mainBytes, files: files, report: report)
    }

    /// Fails when a qube no given shard claims looks like a shard qube (a qid
    /// from the shard range, a `shard-` tag): its shard is missing, and
    /// writing it into the main store would leave a trace.
    func checkNotAShardQube(_ domain: Domain) throws {
        let tag = domain.tags.first { $0.value.hasPrefix("shard-") }
        guard tag != nil || options.qidRange.contains(domain.qid) else { return }
        throw ShardIssue(
            "the qube looks like a shard qube but no given shard holds it; give its shard (nothing was written)",
            qube: domain.name, field: tag == nil ? "qid" : "tag", value: tag?.value ?? String(domain.qid))
    }

    /// Resets every main-store reference to a qube that moved into a shard.
    mutating func resetReferences(to moved: Set<ExactString>) {
        for (property, value) in main.globalProperties.sorted(by: { $0.key < $1.key })
        where Schema.global[property]?.kind == .qubeRef && moved.contains(ExactString(value)) {
            main.globalProperties[property] = nil
            report.resets.append(ShardChange(qube: "dom0", field: "global." + property, old: value, new: nil))
        }
        for domain in main.domains {
            var changes: [ShardChange] = []
            main.update(domain.name) { qube in
                for (property, value) in qube.properties.sorted(by: { $0.key < $1.key })
                where moved.contains(ExactString(value)) && Schema.property(property, of: qube.vmClass)?.kind == .qubeRef {
                    qube.properties[property] = nil
                    changes.append(ShardChange(qube: qube.name, field: "property." + property, old: value, new: nil))
                }
                for (deviceClass, assignments) in qube.devices {
                    let kept = assignments.filter { !moved.contains(ExactString($0.backendDomain ?? "")) }
                    for device in assignments where moved.contains(ExactString(device.backendDomain ?? "")) {
                        changes.append(ShardChange(qube: qube.name, field: "devices." + deviceClass, old: device.backendDomain, new: nil))
                    }
                    qube.devices[deviceClass] = kept
                }
            }
            report.resets += changes
        }
    }
}
