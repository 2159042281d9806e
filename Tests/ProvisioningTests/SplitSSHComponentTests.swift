import Foundation
import QrexecPolicy
import QubesAdmin
import QubesStore
import Testing

@testable import Provisioning

/// The split-ssh component (docs/split-services.md, "Split SSH"): no qube of its own; the keys qube's
/// services, the policy for the named clients, and their undo.
@Suite struct SplitSSHComponentTests {
    static func manifest(ask: Bool = true) -> Manifest {
        var manifest = Manifest(components: [.base, .network, .usb, .splitSSH])
        manifest.sshClients = ["work", "personal"]
        manifest.sshAsk = ask
        return manifest
    }

    @Test func offlineApplyChangesNoQubeThenNothingAndDestroyRestores() throws {
        let plain = try Scratch()
        try plain.apply(Manifest(components: [.base, .network, .usb]))
        let scratch = try Scratch()
        let original = try scratch.canonical()
        let backend = try scratch.apply(Self.manifest())
        #expect(try scratch.canonical() == plain.canonical(), "the same qubes as without split-ssh")
        #expect(try scratch.planner(backend).plan(Self.manifest()).operations.isEmpty)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try scratch.canonical() == original)
        #expect(try scratch.policyFiles() == ["30-user.policy"])
    }

    @Test func policyAsksOrAllowsTheNamedClientsOnlyAndOnlyToTheKeysQube() throws {
        for ask in [true, false] {
            let scratch = try Scratch()
            try scratch.apply(Self.manifest(ask: ask))
            let decision = ask ? "ask" : "allow"
            expectDecisions(try scratch.policyEvaluator(), [
                ("liteqube.SplitSSH", "work", "core-keys", decision),
                ("liteqube.SplitSSH", "personal", "core-keys", decision),
                ("liteqube.SplitSSH", "work", "dom0", "deny"),
                ("liteqube.SplitSSH", "work", "core-net", "deny"),
                ("liteqube.SplitSSH", "untrusted", "core-keys", "deny"),
                ("liteqube.SplitSSH", "core-net", "core-keys", "deny"),
                ("liteqube.SplitSSHSave", "work", "core-keys", "deny"),
                ("liteqube.SplitFile+id", "work", "core-keys", "deny"),
            ], "ask \(ask): ")
        }
    }

    @Test func manifestKeysAreTypedAndRefusedWithTheirLine() throws {
        let manifest = try Manifest.parse("components: [base, split-ssh]\nssh_clients: [work, vault-2]\nssh_ask: false\n")
        #expect(manifest.sshClients == ["work", "vault-2"] && !manifest.sshAsk)
        #expect(try Manifest.parse("components: [base, split-ssh]\n").sshAsk)
        let base = "components: [base, split-ssh]\n"
        expectRefusal(of: base + "ssh_clients: [dom0]\n", line: 2, message: "dom0", by: { try Manifest.parse($0) })
        expectRefusal(of: base + "ssh_clients: [\"a b\"]\n", line: 2, message: "not a valid qube name", by: { try Manifest.parse($0) })
        expectRefusal(of: base + "ssh_ask: sometimes\n", line: 2, message: "ssh_ask must be true or false", by: { try Manifest.parse($0) })
        let scratch = try Scratch()
        var keys = Self.manifest()
        keys.sshClients = ["core-keys"]
        #expect { try scratch.planner(OfflineBackend(path: scratch.store)).plan(keys) } throws: { "\($0)".contains("is the keys qube itself") }
    }

    @Test func templateGetsTheKeysQubesServicesAndLosesThemOnDestroy() throws {
        let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let original = try system.root.snapshot()
        let planner = Planner(
            backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
            executor: system.executor, package: try system.root.package())
        try system.applier.apply(try planner.plan(Self.manifest()))
        let root = system.root
        #expect(try root.text("/etc/qubes-rpc/liteqube.SplitSSH").contains("exec /usr/bin/ssh-agent /usr/lib/liteqube/lq-splitssh serve\n"))
        #expect(try root.text("/etc/qubes-rpc/liteqube.SplitSSHSave").contains("lq-splitfile save --subfolder .ssh --max-size 16384"))
        #expect(try root.text("/etc/qubes-rpc/liteqube.SplitSSHChecksum").contains("lq-splitfile pin --keys-qube core-keys --subfolder .ssh"))
        #expect(root.owner("/etc/qubes-rpc/liteqube.SplitSSH").mode == 0o755)
        try system.applier.destroy()
        #expect(try root.snapshot() == original)
    }

    @Test func theClientInstallerNamesTheKeysQubeAndHasNoPlaceholder() throws {
        var manifest = Self.manifest()
        manifest.names[.keys] = "vault-keys"
        let installer = try SplitSSH.clientInstaller(manifest)
        #expect(installer.contains("ExecStart=/usr/bin/qrexec-client-vm vault-keys liteqube.SplitSSH"))
        #expect(!installer.contains("{{"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func theClientInstallerPassesShellcheck() throws {
        #expect(try Shellcheck.passes(try SplitSSH.clientInstaller(Self.manifest())))
    }

    @Test func dom0SavesOnlyUnencryptedOpenSSHKeys() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-sshkey-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh-keygen") else {
            Issue.record("ssh-keygen (openssh-client) is missing")
            return
        }
        for (name, passphrase) in [("plain", ""), ("locked", "secret words")] {
            let keygen = try Process.run(URL(fileURLWithPath: "/usr/bin/ssh-keygen"), arguments: ["-q", "-t", "ed25519", "-N", passphrase, "-f", "\(folder)/\(name)"])
            keygen.waitUntilExit()
        }
        let plain = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/plain")))
        #expect(OpenSSHKey.problem(plain) == nil)
        #expect(OpenSSHKey.problem(try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/locked"))))?.contains("has a passphrase (cipher aes256-ctr)") == true)
        #expect(OpenSSHKey.problem(try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder)/plain.pub"))))?.contains("not an OpenSSH private key") == true)
        #expect(OpenSSHKey.problem(Array(plain.prefix(60)) + Array("\n-----END OPENSSH PRIVATE KEY-----\n".utf8)) != nil)
        #expect(OpenSSHKey.problem(plain + [UInt8](repeating: 0x41, count: 16 * 1024)) != nil)
    }
}
