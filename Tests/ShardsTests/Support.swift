import Foundation
import QubesStore
import TestSupport
@testable import Shards

/// Access to this target's fixtures.
enum Fixtures {
    static let folder = FixtureFolder(bundle: .module)
    static var root: URL { folder.root }

    static func bytes(_ relative: String) throws -> [UInt8] { try folder.bytes(relative) }

    static func store(_ name: String) throws -> Store {
        try Store.load(xml: bytes("stores/\(name).xml")).store
    }
}

extension Fixtures {
    /// The main store and shards of `default-2x2`.
    static func default2x2() throws -> (main: Store, shards: [ShardSource]) {
        let main = try Store.load(xml: bytes("default-2x2/main.xml")).store
        let folder = root.appendingPathComponent("default-2x2").path
        return (main, ["s0", "s1"].map { ShardFolder(root: folder + "/" + $0).read() })
    }
}

/// A deterministic stand-in for the CSPRNG: counts up from the range's start.
final class CountingRandom: @unchecked Sendable {
    private var next = 0
    func pick(_ range: ClosedRange<Int>) -> Int {
        defer { next += 1 }
        return range.lowerBound + next % range.count
    }
}

/// Merge options with deterministic qids.
func testOptions(_ sanitize: SanitizeOptions = SanitizeOptions(), range: ClosedRange<Int> = shardQIDRange) -> MergeOptions {
    let random = CountingRandom()
    return MergeOptions(qidRange: range, sanitize: sanitize, random: { random.pick($0) })
}

/// A qube's content as shard-file text (no qid, tags sorted), for comparisons.
func text(of domain: Domain) throws -> String {
    var output = XMLOutput()
    try XMLWriter.write(domain, withQID: false, sortedTags: true, into: &output)
    return String(decoding: output.bytes, as: UTF8.self)
}

/// A shard source made in memory from shard-file text.
func shardSource(_ text: String, root: String = "mem") -> ShardSource {
    let path = root + "/domains.xml"
    do {
        let file = try ShardFile.parse(Array(text.utf8), file: path)
        let document = ShardDocument(path: path, file: file, bytes: Array(text.utf8))
        return ShardSource(root: root, shard: .success(Shard(root: root, documents: [document])))
    } catch {
        return ShardSource(root: root, shard: .failure(error as! ShardIssue))
    }
}
