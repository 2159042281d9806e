import LQCommon
import QubesStore

/// What `lq shard audit` found.
public struct AuditReport: Sendable {
    /// Traces of shards: any one makes the audit fail.
    public var findings: [ShardIssue] = []
    /// Facts worth knowing that give nothing away by themselves (qid gaps).
    public var information: [String] = []

    public var json: JSONValue {
        .object(["findings": .array(findings.map(\.json)), "information": .array(information.map(JSONValue.string))])
    }
}

/// The deniability audit (docs/shards.md, "Deniability audit"): does this dom0 give
/// away that shards exist?
public enum ShardAudit {
    /// Audits the main store, and the text of `scanned` files (path, bytes),
    /// for the names, uuids, pools and paths of `shards` and for telltale structure.
    public static func audit(
        main: Store, mainPath: String, shards: [Shard], scanned: [(path: String, bytes: [UInt8])] = [],
        qidRange: ClosedRange<Int> = shardQIDRange
    ) -> AuditReport {
        var report = AuditReport()
        let domains = main.domains
        var qids: [Int] = []
        for domain in domains {
            qids.append(domain.qid)
            if qidRange.contains(domain.qid) {
                report.findings.append(ShardIssue(
                    "qid in the shard range", file: mainPath, qube: domain.name, field: "qid", value: String(domain.qid)))
            }
            for tag in domain.tags where tag.value.hasPrefix("shard-") {
                report.findings.append(ShardIssue("shard tag", file: mainPath, qube: domain.name, field: "tag", value: tag.value))
            }
        }
        let below = qids.filter { $0 < qidRange.lowerBound }.sorted()
        if let last = below.last {
            let gaps = Set(0...last).subtracting(below).count
            if gaps > 0 { report.information.append("\(gaps) unused qids below \(last) in the main store (deleted qubes leave them too)") }
        }
        let mainPools = Set(main.pools.keys)
        let mainLocations = Set(main.pools.values.compactMap(ShardRules.location))
        for shard in shards {
            for pool in shard.pools {
                if mainPools.contains(pool.name) {
                    report.findings.append(ShardIssue("shard pool in the main store", file: mainPath, field: "pool", value: pool.name))
                }
                if let location = ShardRules.location(of: pool), mainLocations.contains(location) {
                    report.findings.append(ShardIssue("shard pool path in the main store", file: mainPath, field: "pool", value: location))
                }
            }
        }
        let names = Set(domains.map { ExactString($0.name) })
        let uuids = Set(domains.map(\.uuid))
        for shard in shards {
            for (_, domain) in shard.domains {
                if names.contains(ExactString(domain.name)) {
                    report.findings.append(ShardIssue("shard qube name in the main store", file: mainPath, qube: domain.name, field: "name", value: domain.name))
                }
                if uuids.contains(domain.uuid) {
                    report.findings.append(ShardIssue("shard qube uuid in the main store", file: mainPath, qube: domain.name, field: "uuid", value: domain.uuid))
                }
            }
        }
        let needles = traces(of: shards)
        for (path, bytes) in scanned {
            let tokens = Set(tokenize(bytes))
            for (needle, kind) in needles where tokens.contains(needle) {
                report.findings.append(ShardIssue("shard \(kind) found", file: path, field: kind, value: needle))
            }
        }
        return report
    }

    /// Every known shard qube name, uuid, pool name, pool path and shard tag.
    static func traces(of shards: [Shard]) -> [(String, String)] {
        var needles: [(String, String)] = []
        for shard in shards {
            needles.append((ShardSanitizer.tag(ofShard: shard.name), "tag"))
            for pool in shard.pools {
                needles.append((pool.name, "pool"))
                if let location = ShardRules.location(of: pool) { needles.append((location, "path")) }
            }
            for (_, domain) in shard.domains {
                needles.append((domain.name, "name"))
                needles.append((domain.uuid, "uuid"))
            }
        }
        return needles
    }

    /// The words of a text: runs of name, uuid and path characters (`A-Z a-z 0-9 _ . - / :`),
    /// plus each run's `/`-separated prefixes and parts and its `:`-separated parts, so paths, names
    /// inside paths and policy tokens (`@tag:shard-x`) match.
    static func tokenize(_ bytes: [UInt8]) -> [String] {
        var tokens: [String] = []
        var current: [UInt8] = []
        func flush() {
            guard !current.isEmpty else { return }
            var word = current
            while let last = word.last, last == UInt8(ascii: ".") || last == UInt8(ascii: ":") || last == UInt8(ascii: "/") {
                word.removeLast()
            }
            let text = String(decoding: word, as: UTF8.self)
            tokens.append(text)
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            for index in parts.indices {
                tokens.append(String(parts[index]))
                tokens.append(parts[...index].joined(separator: "/"))
            }
            // `@tag:shard-x` in a policy file, `key:value` in a log line.
            tokens += text.split(separator: ":").map(String.init)
            current = []
        }
        for byte in bytes {
            let isWord = (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "/") || byte == UInt8(ascii: ":")
            if isWord { current.append(byte) } else { flush() }
        }
        flush()
        return tokens
    }
}
