import Foundation
import QrexecPolicy
import QubesStore
import Testing
@testable import Shards

/// The malicious and broken shard corpus: `Fixtures/malicious/<case>/domains.xml`,
/// with the expected outcome of each in `Fixtures/malicious/expected.json`.
@Suite struct MaliciousShardTests {
    struct Expected: Decodable {
        var error: Bool?
        var merged: [String]?
        var skipped: [String]?
        var withheld: [String]?
        var recovered: [String]?
        var notices: [String]?
        var refused_pools: [String]?
    }

    static let expectations: [String: Expected] = {
        let data = try! Data(contentsOf: Fixtures.root.appendingPathComponent("malicious/expected.json"))
        return try! JSONDecoder().decode([String: Expected].self, from: data)
    }()

    static let options: MergeOptions = {
        let policy = PolicyLoader(directories: [Fixtures.root.appendingPathComponent("malicious-policy").path]).load()
        return testOptions(SanitizeOptions(grantingTags: SanitizeOptions.grantingTags(of: policy.policy)))
    }()

    @Test func corpusHasAtLeastThirtyCases() {
        #expect(Self.expectations.count >= 30)
        #expect(Self.options.sanitize.grantingTags == ["trusted-admin"])
    }

    @Test(arguments: expectations.keys.sorted())
    func maliciousShardChangesNothingOfTheMainStore(name: String) throws {
        let expected = try #require(Self.expectations[name])
        let (main, fixtureShards) = try Fixtures.default2x2()
        let folder = Fixtures.root.appendingPathComponent("malicious/\(name)").path
        let source = ShardFolder(root: folder).read()
        let result = try ShardMerge.merge(main: main, shards: [fixtureShards[0], source], options: Self.options)
        let report = result.report.shards[1]

        #expect(result.report.shards[0].merged == ["anon-whonix", "untrusted"])
        if expected.error == true {
            let error = try #require(report.error)
            #expect(error.file != nil)
            #expect(report.merged.isEmpty)
        } else {
            #expect(report.error == nil, "\(String(describing: report.error))")
            #expect(Set(report.merged) == Set(expected.merged ?? []))
            #expect(Set(report.skipped.compactMap(\.qube)) == Set(expected.skipped ?? []), "\(report.skipped)")
            #expect(report.skipped.allSatisfy { $0.file != nil && $0.field != nil })
            #expect(Set(report.changes.map(\.field)) == Set(expected.withheld ?? []))
            #expect(Set(report.recoveries.map(\.field)) == Set(expected.recovered ?? []))
            #expect(Set(report.notices.compactMap(\.field)) == Set(expected.notices ?? []))
            #expect(Set(report.refusedPools.compactMap { $0.field?.split(separator: ".")[1] }.map(String.init)) == Set(expected.refused_pools ?? []))
        }
        try expectMainUnchanged(main, in: result)

        // Split gives the shard back unchanged: withheld data restored, skipped qubes kept.
        if case .success(let shard) = source.shard, try shard.documents[0].file.bytes() == shard.documents[0].bytes,
            report.recoveries.isEmpty
        {
            let split = try ShardSplit.split(
                merged: try Store.load(xml: result.bytes).store, previousMain: main, shards: [fixtureShards[0], source],
                options: MergeOptions(sanitize: Self.options.sanitize))
            #expect(split.files.allSatisfy { !$0.changed }, "\(split.files.filter(\.changed).map { firstDifference($0.bytes, $0.previous) })")
            #expect(split.mainBytes == (try XMLWriter.write(main)))
        }
    }

    @Test func oversizedShardFileIsRefused() throws {
        let (main, _) = try Fixtures.default2x2()
        let padding = String(repeating: "<!-- padding -->\n", count: (17 << 20) / 17)
        let result = try ShardMerge.merge(
            main: main, shards: [shardSource("<shard version=\"1\" name=\"big\"><domains/>" + padding + "</shard>")],
            options: Self.options)
        #expect(result.report.shards[0].error?.message.contains("limit") == true)
        try expectMainUnchanged(main, in: result)
    }

    /// Every main-store qube, pool, label and global property is in the merged store unchanged.
    func expectMainUnchanged(_ main: Store, in result: MergeResult) throws {
        let merged = try Store.load(xml: result.bytes).store
        #expect(try XMLWriter.write(merged) == result.bytes)
        for domain in main.domains {
            let mergedDomain = try #require(merged[domain.name])
            #expect(mergedDomain.qid == domain.qid && mergedDomain.uuid == domain.uuid)
            #expect(try text(of: mergedDomain) == text(of: domain))
        }
        #expect(Array(merged.pools.elements.prefix(main.pools.count)).map(\.value) == Array(main.pools.values))
        #expect(merged.globalProperties == main.globalProperties)
        #expect(merged.sortedLabels == main.sortedLabels)
    }
}
