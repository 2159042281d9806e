import QubesStore
import Testing
@testable import Shards

@Suite struct MergeTests {
    @Test func fixtureMergesWithTheExpectedContent() throws {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards, options: testOptions())
        #expect(result.report.shards.map(\.merged) == [["anon-whonix", "untrusted"], ["vault", "work"]])
        #expect(result.report.shards.allSatisfy { $0.skipped.isEmpty && $0.changes.isEmpty && $0.recoveries.isEmpty })
        let expected = try Store.load(xml: Fixtures.bytes("default-2x2/expected-merged-content.xml")).store
        #expect(result.store.count == expected.count)
        for domain in expected.domains {
            var merged = try #require(result.store[domain.name])
            if let shard = ["anon-whonix": "s0", "untrusted": "s0", "vault": "s1", "work": "s1"][domain.name] {
                #expect(shardQIDRange.contains(merged.qid))
                #expect(merged.tags.remove(ExactString("shard-" + shard)) != nil)
            } else {
                #expect(merged.qid == domain.qid)
            }
            #expect(try text(of: merged) == text(of: domain))
        }
        #expect(result.store.pools.keys.elements == ["varlibqubes", "linux-kernel", "s0-pool", "s1-pool"])
    }

    @Test func mergedStoreIsCanonicalAndLoadsCleanly() throws {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards, options: testOptions())
        let loaded = try Store.load(xml: result.bytes)
        #expect(try XMLWriter.write(loaded.store) == result.bytes)
        #expect(StoreCheck.check(result.bytes).errors.isEmpty)
    }

    @Test func qidsComeFromTheRangeWithoutCollisions() throws {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards, options: testOptions(range: 8000...8003))
        let qids = ["anon-whonix", "untrusted", "vault", "work"].compactMap { result.store[$0]?.qid }
        #expect(Set(qids) == Set(8000...8003))
        let full = try ShardMerge.merge(main: main, shards: shards, options: testOptions(range: 8000...8002))
        #expect(full.report.shards[1].skipped.map(\.qube) == ["work"])
    }

    @Test func allocatorSkipsUsedQIDsAndFallsBackToAScan() {
        var allocator = QIDAllocator(range: 10...13, used: [10, 11, 5], random: { _ in 10 })
        #expect(allocator.next() == 12)
        #expect(allocator.next() == 13)
        #expect(allocator.next() == nil)
        var system = QIDAllocator(range: shardQIDRange, used: [])
        let drawn = (0..<100).compactMap { _ in system.next() }
        #expect(Set(drawn).count == 100 && drawn.allSatisfy(shardQIDRange.contains))
    }

    @Test func mainQIDsInTheRangeAreReported() throws {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards, options: testOptions(range: 1...8100))
        #expect(!result.report.mainQIDsInRange.isEmpty)
        #expect(result.report.mainQIDsInRange.allSatisfy { $0.field == "qid" && $0.qube != nil })
    }

    @Test func grantingTagsAreWithheldUnlessAllowed() throws {
        let (main, shards) = try Fixtures.default2x2()
        let policy = SanitizeOptions(grantingTags: ["vault"])
        let withheld = try ShardMerge.merge(main: main, shards: shards, options: testOptions(policy))
        #expect(withheld.store["vault"]?.tags.contains("vault") == false)
        #expect(withheld.report.shards[1].changes == [ShardChange(qube: "vault", field: "tag.vault", old: "vault", new: nil)])
        #expect(withheld.store["anon-whonix"]?.tags.contains("anon-vm") == true)
        let allowed = try ShardMerge.merge(
            main: main, shards: shards, options: testOptions(SanitizeOptions(allowTags: ["vault"], grantingTags: ["vault"])))
        #expect(allowed.store["vault"]?.tags.contains("vault") == true)
    }

    @Test func nameConflictsAreSkippedAndReported() throws {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards + [shards[0]], options: testOptions())
        #expect(result.report.shards[2].error?.value == "s0")
        let (_, again) = try Fixtures.default2x2()
        var renamed = try again[0].shard.get()
        renamed.documents[0].file.name = "other"
        renamed.documents[0].file.pools = []
        let conflict = try ShardMerge.merge(
            main: main, shards: [shards[0], ShardSource(root: "other", shard: .success(renamed))], options: testOptions())
        #expect(conflict.report.shards[1].merged.isEmpty)
        #expect(Set(conflict.report.shards[1].skipped.map(\.qube)) == ["anon-whonix", "untrusted"])
    }
}
