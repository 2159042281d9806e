import QubesStore
import Shards

/// Shards: merge and split of the 5029-qube store with 1,500 qubes cut into
/// 10 shards, against a plain load + save of the same store.
func shardBenchmarks(_ folder: String) throws {
    guard let bytes = readFile("\(folder)/qubes-scaled-5000.xml") else {
        print("shards: qubes-scaled-5000.xml not found in \(folder), skipped")
        return
    }
    let store = try Store.load(xml: bytes).store
    let cut = try ShardCutter.cut(store, into: 10, limit: 1500)
    let sources: @Sendable () -> [ShardSource] = {
        cut.shards.map { shard in
            let path = "\(shard.name)/domains.xml"
            return ShardSource(root: shard.name, shard: Result {
                Shard(root: shard.name, documents: [ShardDocument(path: path, file: try ShardFile.parse(shard.bytes, file: path), bytes: shard.bytes)])
            }.mapError { $0 as! ShardIssue })
        }
    }
    let runs = 9
    let plain = try measure(runs) { _ = try XMLWriter.write(try Store.load(xml: bytes).store) }
    var mergedBytes: [UInt8] = []
    let merge = try measure(runs) {
        mergedBytes = try ShardMerge.merge(mainBytes: cut.main, shards: sources).bytes
    }
    let previousMain = try Store.load(xml: cut.main).store
    let split = try measure(runs) {
        let result = try ShardSplit.split(mergedBytes: mergedBytes, previousMain: previousMain, shards: sources())
        precondition(result.mainBytes == cut.main, "split did not give back the main store")
    }
    print("shards: \(store.count) qubes, \(cut.movedCount) in 10 shards (in memory, no fsync)")
    for (label, figures) in [("load+save", plain), ("merge", merge), ("split", split)] {
        print("  \(label.padding(10)) min \(format(figures.min)) ms  median \(format(figures.median)) ms  ratio (median) \(format(figures.median / plain.median))")
    }
}
