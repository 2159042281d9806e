import AdminServer
import Foundation
import QubesAdmin
import Testing
import TestSupport

/// Must-hold 4 of the shards' attach and detach, through the built lq: after `lq shard detach`, the
/// audit of the main store, the runtime policy folder and the runtime folder finds nothing.
@Suite struct ShardAuditAfterDetachTests {
    @Test func afterDetachTheAuditOfMainPolicyAndRuntimeFoldersIsClean() throws {
        let folder = try shardExample("lq-detach-audit")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        #expect(try LQ.run("store", "fmt", path("main.xml")).status == 0)
        // qubesd stood in by the test Admin API server on the main store; systemctl by a script that logs.
        try FileManager.default.createDirectory(atPath: path("sock"), withIntermediateDirectories: true)
        let server = try AdminSocketServer(directory: path("sock"), backend: OfflineBackend(path: path("main.xml")))
        defer { server.stop() }
        try Data("#!/bin/sh\necho \"$*\" >> \(path("systemctl.log"))\n".utf8).write(to: URL(fileURLWithPath: path("systemctl")))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path("systemctl"))
        let places = ["--runtime-dir", path("run/lq"), "--runtime-policy-dir", path("run/policy.d"), "--socket", path("sock/qubesd.sock"),
                      "--systemctl", path("systemctl"), "--dropin-dir", path("run/qubesd.service.d"), "--timeout", "10"]
        let main = try Data(contentsOf: URL(fileURLWithPath: path("main.xml")))
        let attach = try LQ.run(arguments: ["shard", "attach", path("s0"), path("s1"), "--main", path("main.xml"),
                                            "--policy-dir", path("no-policy")] + places)
        #expect(attach.status == 0, "\(attach.stderr)")
        #expect(FileManager.default.fileExists(atPath: path("run/qubesd.service.d/50-lq-shards.conf")))
        let audit = ["shard", "audit", "--main", path("main.xml"), "--scan", path("run/policy.d"), "--scan", path("run/lq")]
        let known = ["--shard", path("s0"), "--shard", path("s1")]
        // While attached the policy file and the merged store name the shards: the audit finds them.
        let attached = try LQ.run(arguments: audit + known)
        #expect(attached.status == 1 && attached.stderr.contains("20-lq-shards.policy") && attached.stderr.contains("anon-whonix"), "\(attached.stderr)")
        let detach = try LQ.run(arguments: ["shard", "detach", "--all"] + places)
        #expect(detach.status == 0 && !detach.stderr.contains("finding"), "\(detach.stderr)")
        #expect(try String(contentsOfFile: path("systemctl.log"), encoding: .utf8)
            == "stop qubesd.service\ndaemon-reload\nstart qubesd.service\nstop qubesd.service\ndaemon-reload\nstart qubesd.service\n")
        #expect(!FileManager.default.fileExists(atPath: path("run/qubesd.service.d/50-lq-shards.conf")))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path("main.xml"))) == main)
        for arguments in [audit, audit + known, audit + known + ["--json"]] {
            let result = try LQ.run(arguments: arguments)
            #expect(result.status == 0 && result.stderr.isEmpty, "\(arguments): \(result.stderr)")
            #expect(!result.stdout.contains("anon-whonix") && !result.stdout.contains("shard-s"))
        }
    }
}
