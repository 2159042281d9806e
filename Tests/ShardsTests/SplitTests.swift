import Foundation
import OrderedCollections
import QubesStore
import SystemLayer
import TestSupport
import Testing

@testable import Shards

@Suite struct SplitTests {
    func mergedFixture() throws -> (merged: Store, main: Store, shards: [ShardSource]) {
        let (main, shards) = try Fixtures.default2x2()
        let result = try ShardMerge.merge(main: main, shards: shards, options: testOptions())
        return (try Store.load(xml: result.bytes).store, main, shards)
    }

    func file(_ result: SplitResult, _ shard: String) throws -> ShardFile {
        let output = try #require(result.files.first { $0.path.hasSuffix(shard + "/domains.xml") })
        return try ShardFile.parse(output.bytes, file: output.path)
    }

    @Test func changesMadeWhileAttachedGoHome() throws {
        var (merged, main, shards) = try mergedFixture()
        merged.update("work") { qube in
            qube.properties["memory"] = "999"
            qube.features["service.cups"] = "1"
            qube.tags.append("new-tag")
        }
        var fresh = try #require(merged["untrusted"])
        fresh.name = "fresh"
        fresh.qid = 77
        fresh.uuid = "99999999-2222-4333-8444-555555555555"
        fresh.tags = []
        for index in fresh.volumes.indices { fresh.volumes[index].vid = fresh.volumes[index].vid.replacingOccurrences(of: "untrusted", with: "fresh") }
        try merged.insert(fresh)
        var tagged = try #require(merged["personal"])
        tagged.name = "tagged"
        tagged.qid = 78
        tagged.uuid = "99999999-2222-4333-8444-666666666666"
        tagged.tags = ["shard-s1"]
        try merged.insert(tagged)
        merged.remove("vault")
        merged.update("personal") { $0.properties["netvm"] = "untrusted" }

        let result = try ShardSplit.split(merged: merged, previousMain: main, shards: shards)
        let s0 = try file(result, "s0"), s1 = try file(result, "s1")
        #expect(s0.domains.map(\.name) == ["anon-whonix", "fresh", "untrusted"])
        #expect(s1.domains.map(\.name) == ["tagged", "work"])
        let work = try #require(s1.domains.last)
        #expect(work.properties["memory"] == "999" && work.features["service.cups"] == "1" && work.tags.contains("new-tag"))
        #expect(!work.tags.contains("shard-s1") && s1.domains[0].tags.isEmpty)
        #expect(result.report.removed.map(\.qube) == ["vault"])
        #expect(result.report.resets == [ShardChange(qube: "personal", field: "property.netvm", old: "untrusted", new: nil)])
        #expect(result.main["personal"]?.properties["netvm"] == nil)
        let mainText = String(decoding: result.mainBytes, as: UTF8.self)
        for trace in [">untrusted<", "anon-whonix", ">work<", "s0-pool", "s1-pool", "shard-"] { #expect(!mainText.contains(trace), "\(trace)") }
        #expect(try Store.load(xml: result.mainBytes).store.count == 15)
    }

    /// The byte forms load the store on a second thread: same results, and a
    /// store that does not load is the loader's error.
    @Test func mergeAndSplitFromBytesGiveTheSameResults() throws {
        let (main, shards) = try Fixtures.default2x2()
        let mainBytes = try XMLWriter.write(main)
        let merged = try ShardMerge.merge(mainBytes: mainBytes, shards: { shards }, options: testOptions())
        #expect(merged.bytes == (try ShardMerge.merge(main: main, shards: shards, options: testOptions())).bytes)
        let split = try ShardSplit.split(mergedBytes: merged.bytes, previousMain: main, shards: shards)
        #expect(split.mainBytes == mainBytes)
        #expect(split.files.allSatisfy { $0.bytes == $0.previous })
        #expect(throws: StoreError.self) { try ShardMerge.merge(mainBytes: Array("<qubes".utf8), shards: { shards }) }
        #expect(throws: StoreError.self) { try ShardSplit.split(mergedBytes: [], previousMain: main, shards: shards) }
    }

    /// Volumes as merge (and its loader) left them go home as the shard file
    /// had them; volumes changed while attached go home changed.
    @Test func volumesGoHomeAsTheFileHadThemUnlessChanged() throws {
        let (merged, _, _) = try mergedFixture()
        let current = try #require(merged["work"])
        var previous = current
        previous.volumes.removeLast()
        #expect(ShardSplit.restore(current, previous: previous, merged: current, shard: "s1").volumes == previous.volumes)
        var resized = current
        resized.volumes[0].size = "99999"
        #expect(ShardSplit.restore(resized, previous: previous, merged: current, shard: "s1").volumes == resized.volumes)
    }

    @Test func shardQubeOfAMissingShardStopsTheSplit() throws {
        let (merged, main, shards) = try mergedFixture()
        #expect {
            try ShardSplit.split(merged: merged, previousMain: main, shards: [shards[0]])
        } throws: { error in
            let issue = error as! ShardIssue
            return ["vault", "work"].contains(issue.qube) && issue.field != nil
        }
    }

    @Test func skippedQubeLeavesItsShardFileUnchanged() throws {
        let (main, shards) = try Fixtures.default2x2()
        var conflicting = main
        var copy = try #require(main["personal"])
        copy.name = "untrusted"
        copy.qid = 50
        copy.uuid = "99999999-2222-4333-8444-777777777777"
        try conflicting.insert(copy)
        let merge = try ShardMerge.merge(main: conflicting, shards: shards, options: testOptions())
        #expect(merge.report.shards[0].skipped.map(\.qube) == ["untrusted"])
        let result = try ShardSplit.split(merged: try Store.load(xml: merge.bytes).store, previousMain: conflicting, shards: shards)
        #expect(result.files.allSatisfy { !$0.changed })
        #expect(result.report.kept.map(\.qube) == ["untrusted"])
        #expect(result.main["untrusted"]?.uuid == copy.uuid)
    }

    /// Merge skips `work` of s1 (a main qube has the name); the main qube is
    /// then removed or renamed while attached.
    @Test(arguments: [nil, "work-renamed"])
    func skippedQubeStaysWhenTheConflictGoesWhileAttached(renamedTo name: String?) throws {
        let (main, shards) = try Fixtures.default2x2()
        var conflicting = main
        var copy = try #require(main["personal"])
        copy.name = "work"
        copy.qid = 50
        copy.uuid = "99999999-2222-4333-8444-777777777777"
        try conflicting.insert(copy)
        let merge = try ShardMerge.merge(main: conflicting, shards: shards, options: testOptions())
        #expect(merge.report.shards[1].skipped.map(\.qube) == ["work"])
        var merged = try Store.load(xml: merge.bytes).store
        merged.remove("work")
        if let name {
            copy.name = name
            try merged.insert(copy)
        }
        let result = try ShardSplit.split(merged: merged, previousMain: conflicting, shards: shards)
        #expect(result.files.allSatisfy { !$0.changed })
        #expect(result.report.kept.map(\.qube) == ["work"] && result.report.kept[0].message == "the name is taken by another qube")
        #expect(result.report.removed.isEmpty)
        #expect(result.main["work"] == nil && result.main.count == conflicting.count - (name == nil ? 1 : 0))
    }

    /// The loader adds `guivm-dom0` and `audiovm-dom0` at merge to a qube whose file has no tags.
    @Test func tagsTheLoaderDerivedAreNotWrittenBack() throws {
        let (main, _) = try Fixtures.default2x2()
        let canonical = try ShardFile.parse(Array(oneQubeShard(properties: ["template": "fedora-40-xfce"]).utf8), file: "r").bytes()
        let source = shardSource(String(decoding: canonical, as: UTF8.self), root: "r")
        let merge = try ShardMerge.merge(main: main, shards: [source], options: testOptions())
        var merged = try Store.load(xml: merge.bytes).store
        #expect(Set(try #require(merged["lost"]).tags) == ["guivm-dom0", "audiovm-dom0", "shard-r"])
        let unchanged = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        #expect(firstDifference(unchanged.files[0].bytes, canonical) == nil)

        merged.update("lost") { qube in
            qube.properties["guivm"] = "sys-firewall"
            qube.tags.remove("guivm-dom0")
            qube.tags.append("guivm-sys-firewall")
            qube.tags.append("new-tag")
        }
        let result = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        let qube = try #require(try ShardFile.parse(result.files[0].bytes, file: "r").domains.first)
        #expect(qube.properties["guivm"] == "sys-firewall" && Set(qube.tags) == ["guivm-sys-firewall", "new-tag"])
    }

    /// A guivm merge withheld, with its tag; the loader derives `guivm-dom0` at merge.
    @Test(arguments: [nil, "sys-net"])
    func derivedTagsFollowTheRestoredGuivm(changedTo guivm: String?) throws {
        let (main, _) = try Fixtures.default2x2()
        let text = oneQubeShard(properties: ["template": "fedora-40-xfce", "guivm": "sys-firewall"])
            .replacingOccurrences(of: "<tags/>", with: "<tags><tag name=\"guivm-sys-firewall\"/></tags>")
        let canonical = try ShardFile.parse(Array(text.utf8), file: "r").bytes()
        let source = shardSource(String(decoding: canonical, as: UTF8.self), root: "r")
        let merge = try ShardMerge.merge(main: main, shards: [source], options: testOptions())
        var merged = try Store.load(xml: merge.bytes).store
        #expect(merged["lost"]?.properties["guivm"] == nil && merged["lost"]?.tags.contains("guivm-dom0") == true)
        if let guivm {
            merged.update("lost") { qube in
                qube.properties["guivm"] = guivm
                qube.tags.remove("guivm-dom0")
                qube.tags.append(ExactString("guivm-" + guivm))
            }
        }
        let result = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        if let guivm {
            let qube = try #require(try ShardFile.parse(result.files[0].bytes, file: "r").domains.first)
            #expect(qube.properties["guivm"] == guivm && qube.tags == [ExactString("guivm-" + guivm)])
        } else {
            #expect(firstDifference(result.files[0].bytes, canonical) == nil)
        }
    }

    /// `bad` has a memory the store loader refuses, `child` a default_dispvm the
    /// loader refuses once `bad` is left out; both pass the shard rules.
    @Test func qubesTheLoaderRefusedStayInTheirShardFile() throws {
        let (main, _) = try Fixtures.default2x2()
        let qubes: [(String, [String: String])] = [
            ("bad", ["memory": "0"]), ("child", ["default_dispvm": "bad"]), ("gone", [:]),
        ]
        let files = try qubes.enumerated().map { index, qube in
            try ShardFile.parse(Array(oneQubeShard(
                qube.0, properties: qube.1.merging(["template": "fedora-40-xfce"]) { first, _ in first },
                uuid: "11111111-2222-4333-8444-55555555555\(index)")
                .replacingOccurrences(of: "<tags/>", with: "<tags><tag name=\"audiovm-dom0\"/><tag name=\"guivm-dom0\"/></tags>").utf8),
                file: "r")
        }
        let canonical = try ShardFile(name: "r", pools: files[0].pools, domains: files.flatMap(\.domains)).bytes()
        let source = shardSource(String(decoding: canonical, as: UTF8.self), root: "r")
        let merge = try ShardMerge.merge(main: main, shards: [source], options: testOptions())
        #expect(merge.report.shards[0].merged == ["gone"])
        #expect(merge.report.shards[0].skipped.map(\.qube) == ["bad", "child"])
        #expect(merge.report.shards[0].skipped.allSatisfy { $0.message.hasPrefix("refused by the store loader: ") })
        var merged = try Store.load(xml: merge.bytes).store

        let unchanged = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        #expect(firstDifference(unchanged.files[0].bytes, canonical) == nil)
        #expect(unchanged.report.kept == merge.report.shards[0].skipped)
        #expect(unchanged.report.removed.isEmpty)

        merged.remove("gone")
        let result = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        #expect(try ShardFile.parse(result.files[0].bytes, file: "r").domains.map(\.name) == ["bad", "child"])
        #expect(result.report.kept.map(\.qube) == ["bad", "child"])
        #expect(result.report.removed.map(\.qube) == ["gone"] && result.report.removed[0].message == "removed while attached")
    }

    /// Shard `r` of `text` in its canonical form, merged into the default main store.
    /// A one-file shard `r` (given as text) merged into the default main store.
    struct Attached {
        let main: Store
        /// The shard file as split must give it back when nothing changed.
        let canonical: [UInt8]
        let source: ShardSource
        var merged: Store

        init(_ text: String) throws {
            main = try Fixtures.default2x2().main
            canonical = try ShardFile.parse(Array(text.utf8), file: "r").bytes()
            source = shardSource(String(decoding: canonical, as: UTF8.self), root: "r")
            merged = try Store.load(xml: try ShardMerge.merge(main: main, shards: [source], options: testOptions()).bytes).store
        }

        /// The shard file split writes now.
        func split() throws -> [UInt8] { try ShardSplit.split(merged: merged, previousMain: main, shards: [source]).files[0].bytes }

        /// The first qube of the shard file split writes now.
        func splitQube() throws -> Domain { try #require(try ShardFile.parse(split(), file: "r").domains.first) }
    }

    /// The loader migrates `service.meminfo-writer` at merge: the feature goes,
    /// and an empty one sets maxmem to 0.
    @Test func meminfoWriterTheLoaderMigratedIsWrittenBack() throws {
        let text = oneQubeShard(properties: ["template": "fedora-40-xfce"])
            .replacingOccurrences(of: "<features/>", with: "<features><feature name=\"service.meminfo-writer\"></feature></features>")
        var shard = try Attached(text)
        #expect(shard.merged["lost"]?.features["service.meminfo-writer"] == nil && shard.merged["lost"]?.properties["maxmem"] == "0")
        #expect(firstDifference(try shard.split(), shard.canonical) == nil)

        shard.merged.update("lost") { $0.properties["memory"] = "999" }
        let qube = try shard.splitQube()
        #expect(qube.properties["memory"] == "999" && qube.properties["maxmem"] == nil && qube.features["service.meminfo-writer"] == "")

        shard.merged.update("lost") { $0.properties["maxmem"] = "4000" }
        #expect(try shard.splitQube().properties["maxmem"] == "4000")
    }

    /// The loader drops the absent `gone` from `preload-dispvm` at merge.
    @Test func preloadEntriesTheLoaderRemovedAreWrittenBack() throws {
        let text = oneQubeShard(properties: ["template": "fedora-40-xfce", "template_for_dispvms": "True"])
            .replacingOccurrences(of: "<features/>", with: "<features><feature name=\"preload-dispvm\">gone</feature></features>")
        var shard = try Attached(text)
        #expect(shard.merged["lost"]?.features["preload-dispvm"] == "")
        #expect(firstDifference(try shard.split(), shard.canonical) == nil)

        shard.merged.update("lost") { $0.properties["memory"] = "999" }
        let qube = try shard.splitQube()
        #expect(qube.properties["memory"] == "999" && qube.features["preload-dispvm"] == "gone")
    }

    /// `a` and `b` are each other's netvm; the loader cuts the loop at merge
    /// at the first of them it loads, `a`.
    @Test func netvmLoopTheLoaderBrokeIsWrittenBack() throws {
        let files = try [("a", "b"), ("b", "a")].enumerated().map { index, qube in
            try ShardFile.parse(Array(oneQubeShard(
                qube.0, properties: ["template": "fedora-40-xfce", "provides_network": "True", "netvm": qube.1],
                uuid: "11111111-2222-4333-8444-55555555555\(index)").utf8), file: "r")
        }
        let text = String(decoding: try ShardFile(name: "r", pools: files[0].pools, domains: files.flatMap(\.domains)).bytes(), as: UTF8.self)
        var shard = try Attached(text)
        #expect(shard.merged["a"]?.properties["netvm"] == "" && shard.merged["b"]?.properties["netvm"] == "a")
        #expect(firstDifference(try shard.split(), shard.canonical) == nil)

        shard.merged.update("a") { $0.properties["memory"] = "999" }
        let qube = try shard.splitQube()
        #expect(qube.properties["memory"] == "999" && qube.properties["netvm"] == "b")
    }

    @Test func withheldDataIsWrittenBackUnchanged() throws {
        let (main, _) = try Fixtures.default2x2()
        let text = oneQubeShard(properties: ["template": "fedora-40-xfce", "kernelopts": "nopat"])
            .replacingOccurrences(of: "<features/>", with: "<features><feature name=\"gui-allow-fullscreen\">1</feature></features>")
            .replacingOccurrences(of: "<tags/>", with: "<tags><tag name=\"audiovm-dom0\"/><tag name=\"granted\"/><tag name=\"guivm-dom0\"/></tags><devices class=\"pci\"><device backend-domain=\"dom0\" id=\"00_14.3\" mode=\"required\" identity=\"8086:a0f0::p028000\"/></devices>")
        let canonical = try ShardFile.parse(Array(text.utf8), file: "r").bytes()
        let source = shardSource(String(decoding: canonical, as: UTF8.self), root: "r")
        let options = SanitizeOptions(grantingTags: ["granted"])
        let merge = try ShardMerge.merge(main: main, shards: [source], options: testOptions(options))
        let qube = try #require(merge.store["lost"])
        #expect(qube.features.isEmpty && qube.devices.isEmpty && !qube.tags.contains("granted") && qube.properties["kernelopts"] == nil)
        #expect(merge.report.shards[0].changes.count == 4)
        let result = try ShardSplit.split(
            merged: try Store.load(xml: merge.bytes).store, previousMain: main, shards: [source], options: MergeOptions(sanitize: options))
        #expect(firstDifference(result.files[0].bytes, canonical) == nil)
    }

    @Test func writeFailureLeavesEveryFileOldOrNewAndSaysWhich() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-split-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: Fixtures.root.appendingPathComponent("default-2x2"), to: folder)
        let mainPath = folder.appendingPathComponent("main.xml").path
        let roots = ["s0", "s1"].map { folder.appendingPathComponent($0).path }
        let sources = roots.map { ShardFolder(root: $0).read() }
        let oldMain = try Fixtures.bytes("default-2x2/main.xml")
        let previousMain = try Store.load(xml: oldMain).store
        let merge = try ShardMerge.merge(main: previousMain, shards: sources, options: testOptions())
        var merged = try Store.load(xml: merge.bytes).store
        merged.update("work") { $0.properties["memory"] = "999" }
        merged.update("untrusted") { $0.properties["memory"] = "998" }
        merged.update("personal") { $0.properties["memory"] = "997" }
        let result = try ShardSplit.split(merged: merged, previousMain: previousMain, shards: sources)
        let oldShards = try roots.map { try Data(contentsOf: URL(fileURLWithPath: $0 + "/domains.xml")) }

        // The second shard file's rename fails: s0 is new (with .prev), s1 and main are old.
        #expect {
            try ShardSplit.write(result, main: StoreFile(path: mainPath), fileSystem: FailingRename(at: 3))
        } throws: { error in
            let issue = error as! ShardIssue
            return issue.message.contains(roots[0] + "/domains.xml") && issue.file?.hasSuffix("s1/domains.xml") == true
        }
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: roots[0] + "/domains.xml"))) == result.files[0].bytes)
        #expect(try Data(contentsOf: URL(fileURLWithPath: roots[0] + "/domains.xml.prev")) == oldShards[0])
        #expect(try Data(contentsOf: URL(fileURLWithPath: roots[1] + "/domains.xml")) == oldShards[1])
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: mainPath))) == oldMain)

        let written = try ShardSplit.write(result, main: StoreFile(path: mainPath))
        #expect(written == [roots[0] + "/domains.xml", roots[1] + "/domains.xml", mainPath])
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: mainPath))) == result.mainBytes)
        #expect(try Data(contentsOf: URL(fileURLWithPath: roots[1] + "/domains.xml.prev")) == oldShards[1])
    }
}

/// The system file system, except that the `at`-th rename fails.
final class FailingRename: ForwardingFileSystem, @unchecked Sendable {
    let base = SystemFileSystem()
    let failAt: Int
    private var renames = 0

    init(at call: Int) { failAt = call }

    func rename(_ from: String, _ to: String) throws {
        renames += 1
        if renames == failAt { throw StoreError(.osError, "injected failure at rename #\(renames)", file: to) }
        try base.rename(from, to)
    }
}

@Suite struct NestedShardFileTests {
    @Test func eachQubeGoesBackToItsFileAndNewOnesToTheRootFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-nested-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (main, sources) = try Fixtures.default2x2()
        var file = try sources[1].shard.get().documents[0].file
        let work = file.domains.removeLast()
        var nested = ShardFile(name: "s1", domains: [work])
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("deeper/er"), withIntermediateDirectories: true)
        try Data(try file.bytes()).write(to: folder.appendingPathComponent("domains.xml"))
        try Data(try nested.bytes()).write(to: folder.appendingPathComponent("deeper/er/domains.xml"))
        let source = ShardFolder(root: folder.path).read()
        #expect(try source.shard.get().documents.map(\.path) == [folder.path + "/domains.xml", folder.path + "/deeper/er/domains.xml"])

        let merge = try ShardMerge.merge(main: main, shards: [source], options: testOptions())
        var merged = try Store.load(xml: merge.bytes).store
        #expect(merge.report.shards[0].merged == ["vault", "work"])
        let unchanged = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        #expect(unchanged.files.allSatisfy { !$0.changed })

        var fresh = try #require(merged["work"])
        fresh.name = "work2"
        fresh.qid = 90
        fresh.uuid = "99999999-2222-4333-8444-888888888888"
        for index in fresh.volumes.indices { fresh.volumes[index].vid = fresh.volumes[index].vid.replacingOccurrences(of: "work", with: "work2") }
        try merged.insert(fresh)
        let split = try ShardSplit.split(merged: merged, previousMain: main, shards: [source])
        let root = try ShardFile.parse(split.files[0].bytes, file: "root")
        nested = try ShardFile.parse(split.files[1].bytes, file: "nested")
        #expect(root.domains.map(\.name) == ["vault", "work2"])
        #expect(nested.domains.map(\.name) == ["work"] && !split.files[1].changed)
    }
}
