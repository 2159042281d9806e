import QubesStore
import Testing
@testable import Shards

@Suite struct RoundTripTests {
    static let cases: [(String, Int)] = ["default", "liteqube", "scaled-100"].flatMap { store in [1, 3, 10].map { (store, $0) } }

    @Test(arguments: cases)
    func splitOfMergeGivesBackEveryFile(store name: String, shards count: Int) throws {
        let cut = try ShardCutter.cut(try Fixtures.store(name), into: count)
        #expect(cut.movedCount >= min(count, 3))
        let main = try Store.load(xml: cut.main).store
        let sources = cut.shards.map { shardSource(String(decoding: $0.bytes, as: UTF8.self), root: $0.name) }
        let merged = try ShardMerge.merge(main: main, shards: sources, options: testOptions())
        #expect(merged.report.shards.allSatisfy { $0.skipped.isEmpty && $0.error == nil })
        let loaded = try Store.load(xml: merged.bytes)
        #expect(try XMLWriter.write(loaded.store) == merged.bytes)
        let split = try ShardSplit.split(merged: loaded.store, previousMain: main, shards: sources)
        #expect(firstDifference(split.mainBytes, cut.main) == nil)
        #expect(split.report.resets.isEmpty && split.report.removed.isEmpty)
        for (output, original) in zip(split.files, cut.shards) {
            #expect(firstDifference(output.bytes, original.bytes) == nil, "shard \(original.name)")
            let text = String(decoding: output.bytes, as: UTF8.self)
            #expect(!text.contains("name=\"qid\"") && !text.contains("id=\"domain-") && !text.contains("shard-s"))
        }
    }
}

/// The first differing line of two texts (got, expected), or nil when equal.
func firstDifference(_ got: [UInt8], _ expected: [UInt8]) -> String? {
    guard got != expected else { return nil }
    let left = String(decoding: got, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    let right = String(decoding: expected, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    for index in 0..<max(left.count, right.count) {
        let l = index < left.count ? String(left[index]) : "<end>"
        let r = index < right.count ? String(right[index]) : "<end>"
        if l != r { return "line \(index + 1): got \(l) expected \(r)" }
    }
    return "same lines, different bytes"
}
