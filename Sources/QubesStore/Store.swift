import OrderedCollections

/// The content of a qubes.xml file: labels, pools, global properties and
/// qubes, after loading as qubesd loads.
///
/// Qubes are indexed by qid and by exact name, so lookups are O(1) (qubesd's
/// collection scans every qube on each lookup).
///
/// ### Order
/// `domains` lists qubes in qubesd's collection order — the AdminVM first,
/// then by name in code-point order — which is also the save order.
/// `domainsByQID` lists them by qid, the order of the JSON dump.
public struct Store: Sendable {
    /// Labels by index.
    public var labels: [Int: Label]
    /// Pools in load order (order of first appearance).
    public var pools: OrderedDictionary<String, Pool>
    /// Explicit global properties: name → saved text.
    public var globalProperties: [String: String]
    /// Explicit global text properties whose value is "no value" (saved as `None`).
    public var noneGlobalProperties: Set<String> = []

    private var byQID: [Int: Domain] = [:]
    private var qidByName: [ExactString: Int] = [:]

    public init(
        labels: [Int: Label] = [:], pools: OrderedDictionary<String, Pool> = [:],
        globalProperties: [String: String] = [:]
    ) {
        self.labels = labels
        self.pools = pools
        self.globalProperties = globalProperties
    }

    /// Labels in ascending index order.
    public var sortedLabels: [Label] { labels.values.sorted { $0.index < $1.index } }

    /// The label called `name` (the lowest index when names repeat).
    public func label(named name: String) -> Label? {
        var found: Label?
        for label in labels.values where label.name.utf8.elementsEqual(name.utf8) {
            if found.map({ label.index < $0.index }) ?? true { found = label }
        }
        return found
    }

    /// Number of qubes.
    public var count: Int { byQID.count }

    /// Qubes in collection (and save) order: the AdminVM, then by name.
    /// - Complexity: O(n log n).
    public var domains: [Domain] { orderedQIDs.map { byQID[$0]! } }

    /// The qids of `domains`, in the same order.
    /// - Complexity: O(n log n).
    public var orderedQIDs: [Int] {
        qidByName.sorted { lhs, rhs in
            if lhs.value == 0 || rhs.value == 0 { return lhs.value == 0 && rhs.value != 0 }
            return lhs.key < rhs.key
        }.map(\.value)
    }

    /// Qubes in no particular order, for counting and searching.
    /// - Complexity: O(1).
    public var unorderedDomains: Dictionary<Int, Domain>.Values { byQID.values }

    /// Qubes by ascending qid.
    public var domainsByQID: [Domain] { byQID.values.sorted { $0.qid < $1.qid } }

    /// The qube with this exact name (code-point comparison).
    /// - Complexity: O(1) on average.
    public subscript(name: String) -> Domain? {
        qidByName[ExactString(name)].flatMap { byQID[$0] }
    }

    /// The qube with this qid.
    public subscript(qid qid: Int) -> Domain? { byQID[qid] }

    /// Whether a qube with this exact name exists.
    public func contains(_ name: String) -> Bool { qidByName[ExactString(name)] != nil }

    /// The AdminVM.
    public var adminVM: Domain? { byQID[0] }

    /// Adds a qube; the qid and the name must be unused.
    public mutating func insert(_ domain: Domain) throws {
        if let other = byQID[domain.qid] {
            throw StoreError(
                .valueError, "This collection already holds VM that has qid=\(domain.qid) (\(other.name))",
                qube: domain.name, field: "qid", value: String(domain.qid))
        }
        if contains(domain.name) {
            throw StoreError(
                .valueError, "A VM named \(domain.name) already exists", qube: domain.name, field: "name",
                value: domain.name)
        }
        byQID[domain.qid] = domain
        qidByName[ExactString(domain.name)] = domain.qid
    }

    /// Changes the qube called `name` in place.
    /// - Returns: the closure's result, or `nil` when there is no such qube.
    @discardableResult
    public mutating func update<Result>(_ name: String, _ change: (inout Domain) throws -> Result) rethrows -> Result? {
        guard let qid = qidByName[ExactString(name)] else { return nil }
        defer {
            if let domain = byQID[qid], domain.qid != qid || !domain.name.utf8.elementsEqual(name.utf8) {
                byQID[qid] = nil
                qidByName[ExactString(name)] = nil
                byQID[domain.qid] = domain
                qidByName[ExactString(domain.name)] = domain.qid
            }
        }
        return try change(&byQID[qid]!)
    }

    /// Removes the qube called `name`.
    @discardableResult
    public mutating func remove(_ name: String) -> Domain? {
        guard let qid = qidByName.removeValue(forKey: ExactString(name)) else { return nil }
        return byQID.removeValue(forKey: qid)
    }
}
