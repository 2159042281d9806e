import QubesStore
import Testing
@testable import Shards

@Suite struct AuditTests {
    func afterSplit() throws -> (main: Store, bytes: [UInt8], shards: [Shard]) {
        let (main, sources) = try Fixtures.default2x2()
        let merge = try ShardMerge.merge(main: main, shards: sources, options: testOptions())
        let split = try ShardSplit.split(merged: try Store.load(xml: merge.bytes).store, previousMain: main, shards: sources)
        return (split.main, split.mainBytes, try sources.map { try $0.shard.get() })
    }

    @Test func mainStoreAfterSplitShowsNoTrace() throws {
        let (main, bytes, shards) = try afterSplit()
        let report = ShardAudit.audit(main: main, mainPath: "main.xml", shards: shards, scanned: [("main.xml", bytes)])
        #expect(report.findings.isEmpty)
        #expect(report.information.count == 1)
    }

    @Test(arguments: ["name", "uuid", "pool", "qid"])
    func plantedTraceIsFound(trace: String) throws {
        var (main, _, shards) = try afterSplit()
        switch trace {
        case "name": main.update("personal") { $0.name = "vault" }
        case "uuid": main.update("personal") { $0.uuid = "78ce6427-98b5-59bd-891a-407b60eed1f1" }
        case "pool": main.pools["s1-pool"] = shards[1].pools[0]
        default: main.update("personal") { $0.qid = 8123 }
        }
        let bytes = try XMLWriter.write(main)
        let report = ShardAudit.audit(main: main, mainPath: "main.xml", shards: shards, scanned: [("main.xml", bytes)])
        #expect(!report.findings.isEmpty)
        #expect(report.findings.contains { $0.field == trace || ($0.field == "name" && trace == "name") })
    }

    @Test func scannedLogsAreSearchedForWholeNames() throws {
        let (main, _, shards) = try afterSplit()
        let log = Array("2026-02-01 qubesd: vm.work: starting /run/shards/s1/pool/x\nnetwork ok\n".utf8)
        let report = ShardAudit.audit(main: main, mainPath: "main.xml", shards: shards, scanned: [("log", log)])
        #expect(Set(report.findings.map(\.value)) == ["/run/shards/s1/pool"])
        let named = ShardAudit.audit(main: main, mainPath: "m", shards: shards, scanned: [("log", Array("start work\n".utf8))])
        #expect(named.findings.map(\.value) == ["work"])
        // A policy file left behind names the shard by its tag only.
        let policy = Array("qubes.Filecopy * @tag:shard-s1 @anyvm deny\n".utf8)
        let left = ShardAudit.audit(main: main, mainPath: "m", shards: shards, scanned: [("20-lq-shards.policy", policy)])
        #expect(left.findings.map(\.value) == ["shard-s1"])
    }
}

@Suite struct CheckAndRenameTests {
    @Test func checkFindsWhatMergeWouldWithholdOrRefuse() throws {
        let text = oneQubeShard("Bad name", properties: ["gui-x": "1", "guivm": "sys-gui"])
        let shard = try shardSource(text).shard.get()
        let issues = ShardCheck.check(shard)
        #expect(issues.contains { $0.field == "name" && $0.value == "Bad name" })
        #expect(issues.contains { $0.field == "property.guivm" && $0.value == "sys-gui" })
        let clean = try Fixtures.default2x2().shards.map { try $0.shard.get() }
        #expect(clean.flatMap { ShardCheck.check($0) }.isEmpty)
    }

    @Test func renameFollowsReferencesAndSnapshotVIDs() throws {
        var shard = try Fixtures.default2x2().shards[1].shard.get()
        shard.documents[0].file.domains[1].properties["netvm"] = "vault"
        let outputs = try ShardRename.rename("vault", to: "safe", in: shard)
        let file = try ShardFile.parse(outputs[0].bytes, file: "s1")
        #expect(file.domains.map(\.name) == ["safe", "work"])
        #expect(file.domains[1].properties["netvm"] == "safe")
        let volumes = file.domains[0].volumes
        #expect(volumes.first { $0.name == "root" }?.vid == "appvms/safe/root")
        #expect(volumes.first { $0.name == "private" }?.vid == "appvms/vault/private")
        #expect(throws: ShardIssue.self) { try ShardRename.rename("vault", to: "work", in: shard) }
        #expect(throws: ShardIssue.self) { try ShardRename.rename("nobody", to: "x", in: shard) }
    }
}
