import OrderedCollections
import QubesStore

/// One `domains.xml` file of a shard: a subset of qubes.xml holding the
/// shard's pools and qubes, without qids (docs/shards.md, "Shard file format").
///
/// Domains are kept as `Domain` values whose `qid` is 0 (unassigned); their
/// property, feature and volume values are the texts of the file, so writing
/// a parsed canonical file gives back the same bytes.
public struct ShardFile: Sendable {
    /// The shard's name (`<shard name=…>`).
    public var name: String
    /// Pools declared by this file, in file order.
    public var pools: [Pool]
    /// Qubes, in file order.
    public var domains: [Domain]
    /// What the parser ignored (a stored `qid`, an `id=` attribute).
    public var notices: [ShardIssue] = []

    public init(name: String, pools: [Pool] = [], domains: [Domain] = []) {
        self.name = name
        self.pools = pools
        self.domains = domains
    }

    /// The only format version.
    public static let version = "1"

    /// Whether `name` is a valid shard name: `[A-Za-z0-9_-]{1,31}`.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...31).contains(bytes.count)
            && bytes.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == 0x5F || byte == 0x2D
            }
    }

    /// The canonical bytes of this file: qubes.xml's serialization rules,
    /// domains by name, tags sorted, no qids.
    public func bytes() throws -> [UInt8] {
        var output = XMLOutput()
        output.open("shard", attributes: [("version", Self.version), ("name", name)], level: 0)
        if !pools.isEmpty {
            output.open("pools", level: 1)
            for pool in pools { XMLWriter.write(pool, into: &output) }
            output.close("pools", level: 1)
        }
        let sorted = domains.sorted { ExactString($0.name) < ExactString($1.name) }
        try output.container("domains", level: 1, isEmpty: sorted.isEmpty) { output in
            for domain in sorted { try XMLWriter.write(domain, withQID: false, sortedTags: true, into: &output) }
        }
        output.close("shard", level: 0)
        return output.bytes
    }
}
