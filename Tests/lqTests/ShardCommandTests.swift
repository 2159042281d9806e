import Foundation
import Testing
import TestSupport

/// A copy of the default-2x2 shard example in a fresh temporary folder named `prefix-<uuid>`.
func shardExample(_ prefix: String = "lq-shard") throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: LQ.repository.appendingPathComponent("Tests/ShardsTests/Fixtures/default-2x2"), to: folder)
    return folder
}

@Suite struct ShardCommandTests {
    func example() throws -> URL { try shardExample() }

    @Test func mergeThenSplitGivesBackEveryFileAndAuditIsClean() throws {
        let folder = try example()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        // The example's main.xml is not in qubesd's resave form (empty <devices class="pci"/>): make it so first.
        #expect(try LQ.run("store", "fmt", path("main.xml")).status == 0)
        let originals = try ["main.xml", "s0/domains.xml", "s1/domains.xml"].map { try Data(contentsOf: URL(fileURLWithPath: path($0))) }
        let noPolicy = ["--policy-dir", path("no-policy")]
        let merge = try LQ.run(arguments: ["shard", "merge", "--main", path("main.xml"), "--shard", path("s0"), "--shard", path("s1"),
                                           "-o", path("merged.xml"), "--json"] + noPolicy)
        #expect(merge.status == 0, "\(merge.stderr)")
        #expect(merge.stdout.contains("\"anon-whonix\"") && merge.stdout.contains("\"recoveries\""))
        let format = try LQ.run("store", "fmt", path("merged.xml"), "-o", path("refmt.xml"))
        #expect(format.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("refmt.xml"))) == Data(contentsOf: URL(fileURLWithPath: path("merged.xml"))))
        let split = try LQ.run(arguments: ["shard", "split", "--merged", path("merged.xml"), "--main", path("main.xml"),
                                           "--shard", path("s0"), "--shard", path("s1")] + noPolicy)
        #expect(split.status == 0, "\(split.stderr)")
        let after = try ["main.xml", "s0/domains.xml", "s1/domains.xml"].map { try Data(contentsOf: URL(fileURLWithPath: path($0))) }
        #expect(after == originals)
        let audit = try LQ.run("shard", "audit", "--main", path("main.xml"), "--shard", path("s0"), "--shard", path("s1"))
        #expect(audit.status == 0 && audit.stdout.hasPrefix("info: "))
        let planted = try LQ.run("shard", "audit", "--main", path("merged.xml"), "--shard", path("s0"))
        #expect(planted.status == 1 && planted.stderr.contains("anon-whonix"))
    }

    @Test func checkAndRenameReportFileQubeFieldAndValue() throws {
        let folder = try example()
        defer { try? FileManager.default.removeItem(at: folder) }
        let s0 = folder.appendingPathComponent("s0").path
        #expect(try LQ.run("shard", "check", s0, "--policy-dir", folder.path + "/none").status == 0)
        let renamed = try LQ.run("shard", "rename", s0, "untrusted", "work")
        #expect(renamed.status == 0)
        let conflict = try LQ.run("shard", "rename", s0, "work", "anon-whonix")
        #expect(conflict.status == 1)
        #expect(conflict.stderr.contains(s0) && conflict.stderr.contains("'work'") && conflict.stderr.contains("'anon-whonix'"))
        let usage = try LQ.run("shard", "merge", "--main", "x", "-o", "y", "--qid-range", "9000..12000")
        #expect(usage.status == 2)
    }
}

@Suite struct ShardLifecycleCommandTests {
    @Test func attachDryRunPrintsTheStepsAndDetachWithNothingAttachedIsRefused() throws {
        let folder = try shardExample("lq-attach")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        let places = ["--runtime-dir", path("run/lq"), "--runtime-policy-dir", path("run/policy.d"), "--socket", path("qubesd.sock"),
                      "--systemctl", path("no-systemctl")]
        let dry = try LQ.run(arguments: ["shard", "attach", path("s0"), "--main", path("main.xml"), "--dry-run"] + places)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.hasPrefix("would stop qubesd\nwould merge \(path("main.xml")) and \(path("s0")) into \(path("run/lq/qubes.xml"))\n"))
        #expect(!FileManager.default.fileExists(atPath: path("run/lq/shards.json")))
        let detach = try LQ.run(arguments: ["shard", "detach", "--all"] + places)
        #expect(detach.status == 1 && detach.stderr.contains(path("run/lq/shards.json")) && detach.stderr.contains("no shard is attached"))
        let missing = try LQ.run(arguments: ["shard", "attach", path("none"), "--main", path("main.xml")] + places)
        #expect(missing.status == 1 && missing.stderr.contains(path("none")))
        #expect(try LQ.run(arguments: ["shard", "detach", "s0", "--all"] + places).status == 2)
    }
}

@Suite struct CreateSnapshotCommandTests {
    /// Through a link named create-snapshot lq is the helper, and takes the programs from PATH.
    @Test func aLinkNamedCreateSnapshotRunsTheHelperWithThePathsPrograms() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-cs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("bin"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let link = folder.appendingPathComponent("create-snapshot")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: LQ.binary)
        let losetup = folder.appendingPathComponent("bin/losetup")
        try Data("#!/bin/sh\necho \"$*\" > \(folder.path)/called\nexit 1\n".utf8).write(to: losetup)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: losetup.path)
        for image in ["a.img", "a-cow.img"] { #expect(FileManager.default.createFile(atPath: folder.path + "/" + image, contents: Data(count: 512))) }
        let environment = ["PATH": folder.path + "/bin"]
        let usage = try ProgramResult.run(link, ["origin-a", folder.path + "/a.img"], environment: environment)
        #expect(usage.status == 1 && usage.stderr.contains("expected 3 or 4"), "\(usage.stderr)")
        let failed = try ProgramResult.run(link, ["origin-a", folder.path + "/a.img", folder.path + "/a-cow.img"], environment: environment)
        #expect(failed.status == 1 && failed.stderr.contains("failed to find an unused loop device"), "\(failed.stderr)")
        let called = try String(contentsOfFile: folder.path + "/called", encoding: .utf8)
        #expect(called == "--find --nooverlap --show -- \(folder.path)/a.img\n")
    }
}

@Suite struct ShardPortableCommandTests {
    /// A shard exported by the built lq from one machine and imported on another (the mini store):
    /// the JSON report names what attaching it there recovers; the other machine's store is only read.
    @Test func exportThenImportReportsRecoveriesAsJSON() throws {
        let folder = try shardExample("lq-portable")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        let shard = try String(contentsOfFile: path("s0/domains.xml"), encoding: .utf8)
        try Data(shard.replacingOccurrences(of: "/run/shards/s0/pool", with: path("pool")).utf8).write(to: URL(fileURLWithPath: path("s0/domains.xml")))
        try FileManager.default.createDirectory(atPath: path("pool/appvms/untrusted"), withIntermediateDirectories: true)
        try Data("private".utf8).write(to: URL(fileURLWithPath: path("pool/appvms/untrusted/private.img")))
        try FileManager.default.copyItem(atPath: LQ.repository.appendingPathComponent("Tests/ShardsTests/Fixtures/stores/mini.xml").path, toPath: path("other.xml"))
        let other = try Data(contentsOf: URL(fileURLWithPath: path("other.xml")))
        let export = try LQ.run("shard", "export", "s0", "--from", path("s0"), "-o", path("out"), "--runtime-dir", path("run"))
        #expect(export.status == 0 && export.stdout == "exported s0 to \(path("out")): 1 volume files\n", "\(export.stderr)")
        let imported = try LQ.run("shard", "import", path("out"), "--pool-dir", path("imported"), "--main", path("other.xml"),
                                  "--policy-dir", path("none"), "--json")
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("\"recoveries\"") && imported.stdout.contains("whonix-workstation-17"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("imported/pools/s0-pool/appvms/untrusted/private.img"))) == Data("private".utf8))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("other.xml"))) == other)
        let again = try LQ.run("shard", "import", path("out"), "--pool-dir", path("imported"), "--main", path("other.xml"))
        #expect(again.status == 1 && again.stderr.contains(path("imported")))
        #expect(try LQ.run("shard", "import", path("out")).status == 2)
    }
}
