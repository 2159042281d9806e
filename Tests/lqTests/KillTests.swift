import Foundation
import TestSupport
import Testing

/// kill -9 at random moments of every `lq` operation that writes (docs/crash-safety.md). LQ_KILL_RUNS
/// sets the runs per operation (scripts/kill-campaign runs 1000).
@Suite(.serialized) struct KillTests {
    /// The default-2x2 shard example with its main store in qubesd's resave form.
    static func shardExample(_ scratch: ScratchFolder) throws {
        try FileManager.default.removeItem(atPath: scratch.path)
        try FileManager.default.copyItem(atPath: LQ.repository.appendingPathComponent("Tests/ShardsTests/Fixtures/default-2x2").path, toPath: scratch.path)
        #expect(try LQ.run("store", "fmt", scratch("main.xml")).status == 0)
    }

    static func mergeArguments(_ scratch: ScratchFolder) -> [String] {
        ["shard", "merge", "--main", scratch("main.xml"), "--shard", scratch("s0"), "--shard", scratch("s1"), "-o", scratch("merged.xml"),
         "--policy-dir", scratch("no-policy")]
    }

    /// The store, manifest, policy, rpc and template folders of a Liteqube install (ProvisioningScratch's).
    static func provisioning(_ scratch: ScratchFolder) throws {
        let template = try ProvisioningScratch()
        try template.macKey()
        try FileManager.default.removeItem(atPath: scratch.path)
        try FileManager.default.moveItem(atPath: template.directory, toPath: scratch.path)
        try "components: [base, network, usb]\n".write(toFile: scratch("liteqube.yaml"), atomically: false, encoding: .utf8)
    }

    /// What apply and destroy save after every step: the store, the journal, and each template's lists of
    /// the packages it installed and the commands it ran.
    static let stepped: Set<String> = [
        "qubes.xml", "liteqube.journal.json", "root/var/lib/liteqube/commands", "root/var/lib/liteqube/packages",
    ]

    static func provisioningArguments(_ command: String) -> (ScratchFolder) -> [String] {
        { scratch in
            [command, "-f", scratch("liteqube.yaml"), "--store", scratch("qubes.xml"), "--policy-dir", scratch("policy.d"),
             "--rpc-dir", scratch("qubes-rpc"), "--in-qube", "folder:" + scratch("root") + ",core-keys=" + scratch("keys"),
             "--binaries", scratch("tools")]
        }
    }

    /// The merged store is written whole or not at all (an older one stays), whatever the random qids.
    @Test func merge() throws {
        try KillCampaign(name: "merge", prepare: { scratch in
            try Self.shardExample(scratch)
            try FileManager.default.copyItem(atPath: scratch("main.xml"), toPath: scratch("merged.xml"))
        }, arguments: Self.mergeArguments, orderFree: true).run()
    }

    /// The main store, each shard file and its domains.xml.prev are each old or new.
    @Test func split() throws {
        try KillCampaign(name: "split", prepare: { scratch in
            try Self.shardExample(scratch)
            #expect(try LQ.run(arguments: Self.mergeArguments(scratch)).status == 0)
            // qubesd changed a shard qube and a main qube while attached.
            let merged = try String(contentsOfFile: scratch("merged.xml"), encoding: .utf8)
            let changed = merged.replacingOccurrences(of: "<property name=\"label\">red</property>", with: "<property name=\"label\">purple</property>")
            #expect(changed != merged)
            try changed.write(toFile: scratch("merged.xml"), atomically: false, encoding: .utf8)
        }, arguments: { scratch in
            ["shard", "split", "--merged", scratch("merged.xml"), "--main", scratch("main.xml"), "--shard", scratch("s0"),
             "--shard", scratch("s1"), "--policy-dir", scratch("no-policy")]
        }).run()
    }

    /// The store, the journal, the policy and rpc folders and the template folders.
    @Test func apply() throws {
        try KillCampaign(
            name: "apply", prepare: Self.provisioning, arguments: Self.provisioningArguments("apply"), stepped: Self.stepped
        ).run()
    }

    /// Destroy after a whole apply: every file back to its prior content, or still as apply left it.
    @Test func destroy() throws {
        try KillCampaign(name: "destroy", prepare: { scratch in
            try Self.provisioning(scratch)
            let apply = try LQ.run(arguments: Self.provisioningArguments("apply")(scratch))
            #expect(apply.status == 0, "\(apply.stderr)")
        }, arguments: Self.provisioningArguments("destroy"), stepped: Self.stepped).run()
    }
}
