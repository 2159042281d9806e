import Foundation
import LQCommon
import QubesStore
import Testing
import TestSupport

@testable import Shards

/// Two machines in a temporary folder. A: the default-2x2 main store and its shards, their pools in
/// `A/pools/<shard>` with a volume file per private volume. B: another store (mini) with other
/// templates (no Whonix, no Debian), other labels (red and black on other ids, cyan for gray) and other
/// qubes (its own `vault` and `work`).
struct TwoMachines {
    let root: URL
    let mainB: Store

    init() throws {
        root = try Scratch.folder("lq-portable")
        var mini = try String(contentsOf: Fixtures.root.appendingPathComponent("stores/mini.xml"), encoding: .utf8)
        // Labels go by name: red and black swap ids, gray (unused) becomes cyan.
        for (from, to) in [("label-1\" color=\"0xcc0000\">red", "label-8\" color=\"0xcc0000\">red"),
                           ("label-8\" color=\"0x000000\">black", "label-1\" color=\"0x000000\">black"), (">gray<", ">cyan<")] {
            mini = mini.replacingOccurrences(of: from, with: to)
        }
        mainB = try Store.load(xml: Array(mini.utf8)).store
        for shard in ["s0", "s1"] {
            let pool = path("A/pools/\(shard)")
            let text = try String(contentsOf: Fixtures.root.appendingPathComponent("default-2x2/\(shard)/domains.xml"), encoding: .utf8)
            try write(text.replacingOccurrences(of: "/run/shards/\(shard)/pool", with: pool), to: "A/\(shard)/domains.xml")
            for qube in shard == "s0" ? ["anon-whonix", "untrusted"] : ["vault", "work"] {
                try write("private of \(qube) on A\n" + String(repeating: "x", count: 3000), to: "A/pools/\(shard)/appvms/\(qube)/private.img")
            }
        }
    }

    func path(_ relative: String) -> String { root.path + "/" + relative }

    func write(_ text: String, to relative: String) throws {
        let url = URL(fileURLWithPath: path(relative))
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func bytes(_ relative: String) -> Data? { FileManager.default.contents(atPath: path(relative)) }

    var options: MergeOptions { testOptions() }

    /// Imports the exported folder `from` into `B/shards/<to>`.
    func importToB(_ from: String, as to: String) throws -> PortableReport {
        try ShardPortable.importShard(from: path(from), to: path("B/shards/" + to), main: mainB, options: options)
    }

    /// Merges B's main store with the shard folders `roots`; checks that B's own qubes, pools, labels and
    /// globals are untouched, the result loads and checks clean, and no shard qube keeps data outside its pools.
    func mergeIntoB(_ roots: [String]) throws -> Store {
        let sources = roots.map { ShardFolder(root: path($0)).read() }
        let result = try ShardMerge.merge(main: mainB, shards: sources, options: options)
        try MaliciousShardTests().expectMainUnchanged(mainB, in: result)
        // lq store check's findings: none but the shard qubes' qids, in the shard range by design.
        let check = StoreCheck.check(result.bytes)
        let warnings = check.warnings.filter { !($0.field == "qid" && mainB[$0.qube ?? ""] == nil) }
        #expect(check.errors.isEmpty && warnings.isEmpty, "\(check.errors) \(warnings)")
        let merged = try Store.load(xml: result.bytes).store
        let shardPools = Set(merged.pools.keys).subtracting(mainB.pools.keys)
        for domain in merged.domains where mainB[domain.name] == nil {
            #expect(domain.vmClass != .adminVM)
            for volume in domain.volumes where volume.saveOnStop == "True" || volume.snapOnStart == "False" && volume.name != "kernel" {
                #expect(shardPools.contains(volume.pool), "\(domain.name).\(volume.name) in \(volume.pool)")
            }
        }
        return merged
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

@Suite struct PortableTests {
    @Test func exportWritesRelativePoolsAndAManifestOfSizesAndDigests() throws {
        let machines = try TwoMachines()
        defer { machines.remove() }
        let report = try ShardPortable.export("s0", from: machines.path("A/s0"), to: machines.path("out"))
        let volume = "pools/s0-pool/appvms/untrusted/private.img"
        let original = try #require(machines.bytes("A/pools/s0/appvms/untrusted/private.img"))
        #expect(machines.bytes("out/" + volume) == original)
        let manifest = try ShardManifest.parse(Array(try #require(machines.bytes("out/manifest.json"))), file: "m")
        #expect(manifest == report.manifest && manifest.pools == ["s0-pool": "pools/s0-pool"])
        #expect(manifest.volumes.map(\.path) == ["pools/s0-pool/appvms/anon-whonix/private.img", volume])
        let pin = ChecksumPin(of: Array(original))
        #expect(manifest.volumes[1].size == Int64(original.count))
        #expect(manifest.volumes[1].sha256 == pin.sha256.map { String(format: "%02x", $0) }.joined())
        let file = try ShardFile.parse(Array(try #require(machines.bytes("out/domains.xml"))), file: "d")
        #expect(file.pools.map { $0[attribute: "dir_path"] } == ["pools/s0-pool"] && file.domains.count == 2)
        // Attached as it is, the relative pool is refused (it would be read from qubesd's folder).
        let direct = try ShardMerge.merge(main: machines.mainB, shards: [ShardFolder(root: machines.path("out")).read()], options: machines.options)
        #expect(direct.report.shards[0].refusedPools.map(\.field) == ["pool.s0-pool.dir_path"])
        #expect(throws: ShardIssue.self) { try ShardPortable.export("s0", from: machines.path("A/s0"), to: machines.path("out")) }
        #expect(throws: ShardIssue.self) { try ShardPortable.export("other", from: machines.path("A/s0"), to: machines.path("out2")) }
    }

    /// Exported from A, imported into B: templates missing on B recovered (prohibit-start), labels by
    /// name, qubes whose names B has skipped; the result loads on B and leaves B's qubes as they were.
    @Test func aShardFromAnotherMachineLoadsHereAndChangesNoQubeOfThisOne() throws {
        let machines = try TwoMachines()
        defer { machines.remove() }
        for shard in ["s0", "s1"] { _ = try ShardPortable.export(shard, from: machines.path("A/\(shard)"), to: machines.path("out/\(shard)")) }
        let s0 = try machines.importToB("out/s0", as: "s0")
        let merge = try #require(s0.merge)
        #expect(merge.merged == ["anon-whonix", "untrusted"] && merge.skipped.isEmpty)
        #expect(Set(merge.recoveries.map { "\($0.qube).\($0.field)" })
            .isSuperset(of: ["anon-whonix.property.template", "anon-whonix.property.netvm", "anon-whonix.property.default_dispvm"]))
        #expect(s0.ignored.isEmpty)
        #expect(machines.bytes("B/shards/s0/pools/s0-pool/appvms/untrusted/private.img") == machines.bytes("A/pools/s0/appvms/untrusted/private.img"))
        let imported = try ShardFolder(root: machines.path("B/shards/s0")).read().shard.get()
        #expect(imported.pools.map { $0[attribute: "dir_path"] } == [machines.path("B/shards/s0/pools/s0-pool")])
        let s1 = try machines.importToB("out/s1", as: "s1")
        #expect(s1.merge?.merged == [] && Set(s1.merge?.skipped.compactMap(\.qube) ?? []) == ["vault", "work"])

        let merged = try machines.mergeIntoB(["B/shards/s0", "B/shards/s1"])
        let untrusted = try #require(merged["untrusted"])
        // Labels by name: A's red is B's red, on another id.
        #expect(untrusted.properties["label"] == "red" && merged.label(named: "red")?.index == 8)
        #expect(try #require(merged["anon-whonix"]).features["prohibit-start"] != nil)
        #expect(merged["anon-whonix"]?.properties["template"] == nil || merged["anon-whonix"]?.properties["template"] == "fedora-40-xfce")
        #expect(merged["vault"]?.uuid == machines.mainB["vault"]?.uuid)
    }

    /// A shard crafted on A to reach into B: every case of the attack corpus, exported as it is, imported
    /// into B and merged, changes nothing of B and keeps no data outside its own pools.
    @Test(arguments: MaliciousShardTests.expectations.keys.sorted())
    func aCraftedShardGainsNothingOnTheOtherMachine(_ name: String) throws {
        let machines = try TwoMachines()
        defer { machines.remove() }
        let text = try Data(contentsOf: Fixtures.root.appendingPathComponent("malicious/\(name)/domains.xml"))
        guard let file = try? ShardFile.parse(Array(text), file: name) else {
            try FileManager.default.createDirectory(atPath: machines.path("out"), withIntermediateDirectories: true)
            try text.write(to: URL(fileURLWithPath: machines.path("out/domains.xml")))
            try Data(try ShardManifest(shard: "x", pools: [:], volumes: []).bytes()).write(to: URL(fileURLWithPath: machines.path("out/manifest.json")))
            #expect(throws: ShardIssue.self) { try machines.importToB("out", as: "x") }
            #expect(!FileManager.default.fileExists(atPath: machines.path("B/shards/x")))
            return
        }
        var exported = file
        exported.pools = file.pools.map { ShardPortable.rewritten($0, dirPath: ShardManifest.folder(ofPool: $0.name)) }
        let pools = Dictionary(exported.pools.map { ($0.name, ShardManifest.folder(ofPool: $0.name)) }) { first, _ in first }
        try machines.write(String(decoding: try exported.bytes(), as: UTF8.self), to: "out/domains.xml")
        try machines.write(String(decoding: try ShardManifest(shard: file.name, pools: pools, volumes: []).bytes(), as: UTF8.self), to: "out/manifest.json")
        do {
            _ = try machines.importToB("out", as: "x")
        } catch is ShardIssue {
            #expect(!FileManager.default.fileExists(atPath: machines.path("B/shards/x")))
            return
        }
        _ = try machines.mergeIntoB(["B/shards/x"])
    }

    /// Attacks on import itself: a path out of the folder, symlinks to this machine's files, a pool on
    /// this machine's disk, a volume changed after export, a second shard file among the volumes.
    @Test func importRefusesWhatLeadsOutOfTheFolderAndWritesNothing() throws {
        let machines = try TwoMachines()
        defer { machines.remove() }
        try machines.write("vault's private data on B\n", to: "B/var/appvms/vault/private.img")
        let victim = machines.path("B/var/appvms/vault/private.img")
        let volume = "out/pools/s0-pool/appvms/untrusted/private.img"
        let attacks: [(String, (TwoMachines) throws -> Void)] = [
            ("traversal", { m in try m.editManifest { $0.volumes[0].path = "pools/s0-pool/../../../B/var/appvms/vault/private.img" } }),
            ("shard file as volume", { m in try m.editManifest { $0.volumes[0].path = "pools/s0-pool/domains.xml" } }),
            ("symlinked volume", { m in
                try FileManager.default.removeItem(atPath: m.path(volume))
                try FileManager.default.createSymbolicLink(atPath: m.path(volume), withDestinationPath: victim)
            }),
            ("symlinked folder", { m in
                try FileManager.default.removeItem(atPath: m.path("out/pools/s0-pool/appvms/untrusted"))
                try FileManager.default.createSymbolicLink(atPath: m.path("out/pools/s0-pool/appvms/untrusted"), withDestinationPath: m.path("B/var/appvms/vault"))
            }),
            ("absolute pool", { m in
                let text = try String(contentsOfFile: m.path("out/domains.xml"), encoding: .utf8)
                try m.write(text.replacingOccurrences(of: "dir_path=\"pools/s0-pool\"", with: "dir_path=\"\(m.path("B/var"))\""), to: "out/domains.xml")
            }),
            ("changed volume", { m in try m.write("changed", to: volume) }),
        ]
        for (attack, apply) in attacks {
            try? FileManager.default.removeItem(atPath: machines.path("out"))
            _ = try ShardPortable.export("s0", from: machines.path("A/s0"), to: machines.path("out"))
            try apply(machines)
            #expect(throws: ShardIssue.self, "\(attack)") { try machines.importToB("out", as: "s0") }
            #expect(!FileManager.default.fileExists(atPath: machines.path("B/shards/s0")), "\(attack)")
            #expect(machines.bytes("B/var/appvms/vault/private.img") == Data("vault's private data on B\n".utf8))
        }
        // An extra file the manifest does not list is not copied, and said so.
        try? FileManager.default.removeItem(atPath: machines.path("out"))
        _ = try ShardPortable.export("s0", from: machines.path("A/s0"), to: machines.path("out"))
        try machines.write("extra", to: "out/pools/s0-pool/extra.img")
        let report = try machines.importToB("out", as: "s0")
        #expect(report.ignored == ["pools/s0-pool/extra.img"])
        #expect(!FileManager.default.fileExists(atPath: machines.path("B/shards/s0/pools/s0-pool/extra.img")))
    }
}

extension TwoMachines {
    func editManifest(_ change: (inout ShardManifest) -> Void) throws {
        var manifest = try JSONDecoder().decode(ShardManifest.self, from: try #require(bytes("out/manifest.json")))
        change(&manifest)
        try Data(JSONEncoder().encode(manifest)).write(to: URL(fileURLWithPath: path("out/manifest.json")))
    }
}
