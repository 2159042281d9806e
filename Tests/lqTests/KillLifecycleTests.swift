import AdminServer
import Foundation
import QubesAdmin
import TestSupport
import Testing

/// kill -9 at random moments of `lq shard attach` and `detach` (docs/crash-safety.md): the merged store,
/// the record, the isolation policy, qubesd's drop-in, the main store and every shard file and its
/// `domains.xml.prev` are each old or new, and a run again ends where an uninterrupted run ends.
@Suite(.serialized) struct KillLifecycleTests {
    /// The shard example with a systemctl that does nothing (qubesd is stood in by the test's server).
    static func prepare(_ scratch: ScratchFolder) throws {
        try KillTests.shardExample(scratch)
        try Data("#!/bin/sh\nexit 0\n".utf8).write(to: URL(fileURLWithPath: scratch("systemctl")))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch("systemctl"))
    }

    /// The runtime, policy and drop-in folders in the scratch folder; `socket` is qubesd's (a stand-in, or none).
    static func places(_ scratch: ScratchFolder, socket: String, boot: Bool) -> [String] {
        ["--runtime-dir", scratch("run/lq"), "--runtime-policy-dir", scratch("run/policy.d"), "--socket", socket,
         "--systemctl", scratch("systemctl"), "--dropin-dir", scratch("run/qubesd.service.d"), "--timeout", "10"] + (boot ? ["--boot"] : [])
    }

    static func attachArguments(socket: String, boot: Bool) -> (ScratchFolder) -> [String] {
        { scratch in
            ["shard", "attach", scratch("s0"), scratch("s1"), "--main", scratch("main.xml"), "--policy-dir", scratch("no-policy")]
                + places(scratch, socket: socket, boot: boot)
        }
    }

    /// Attached, then qubesd changed a shard qube and a main qube: detach carries both home.
    static func attached(socket: String, boot: Bool) -> (ScratchFolder) throws -> Void {
        { scratch in
            try prepare(scratch)
            let attach = try LQ.run(arguments: attachArguments(socket: socket, boot: boot)(scratch))
            #expect(attach.status == 0, "\(attach.stderr)")
            let merged = try String(contentsOfFile: scratch("run/lq/qubes.xml"), encoding: .utf8)
            let changed = merged.replacingOccurrences(of: "<property name=\"label\">red</property>", with: "<property name=\"label\">purple</property>")
            #expect(changed != merged)
            try changed.write(toFile: scratch("run/lq/qubes.xml"), atomically: false, encoding: .utf8)
        }
    }

    static func detachArguments(socket: String, boot: Bool) -> (ScratchFolder) -> [String] {
        { scratch in ["shard", "detach", "--all"] + places(scratch, socket: socket, boot: boot) }
    }

    /// A qubesd stand-in answering on its own store, outside the folder each run restores.
    static func withQubesd(_ body: (String) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-kill-qubesd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.copyItem(
            atPath: LQ.repository.appendingPathComponent("Tests/ShardsTests/Fixtures/default-2x2/main.xml").path, toPath: folder + "/main.xml")
        let server = try AdminSocketServer(directory: folder, backend: OfflineBackend(path: folder + "/main.xml"))
        defer { server.stop() }
        try body(server.socketPath)
    }

    /// At boot (the unit's ExecStart): merged store, policy, record and drop-in.
    @Test func attachAtBoot() throws {
        let socket = "/nonexistent/qubesd.sock"
        try KillCampaign(name: "attach-boot", prepare: Self.prepare, arguments: Self.attachArguments(socket: socket, boot: true), orderFree: true).run()
    }

    /// At shutdown (ExecStop): the split home, then the runtime files removed.
    @Test func detachAtBoot() throws {
        let socket = "/nonexistent/qubesd.sock"
        try KillCampaign(
            name: "detach-boot", prepare: Self.attached(socket: socket, boot: true), arguments: Self.detachArguments(socket: socket, boot: true),
            orderFree: true
        ).run()
    }

    /// On a running dom0: qubesd stopped, the files written, qubesd started and waited for.
    @Test func attach() throws {
        try Self.withQubesd { socket in
            try KillCampaign(name: "attach", prepare: Self.prepare, arguments: Self.attachArguments(socket: socket, boot: false), orderFree: true).run()
        }
    }

    /// On a running dom0, with the running qubes checked first. Run again after the record is gone, it
    /// says nothing is attached (at boot that is no error).
    @Test func detach() throws {
        try Self.withQubesd { socket in
            try KillCampaign(
                name: "detach", prepare: Self.attached(socket: socket, boot: false), arguments: Self.detachArguments(socket: socket, boot: false),
                orderFree: true, done: "no shard is attached"
            ).run()
        }
    }
}
