import BootProtect
import Foundation
import Glibc
import LQCommon
import Provisioning
import QubesAdmin
import SplitServices
import SystemLayer
import Testing

@Suite struct NetworkTests {
    static let plain = "[connection]\nid=Cafe\ntype=wifi\n\n[wifi]\nssid=Cafe\n"
    static let wpa = "[connection]\nid=Home WiFi\ntype=wifi\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=correct horse\n"
    static let enterprise = "[connection]\nid=Work\n\n[802-1x]\neap=peap;\nidentity=me\npassword=s3cret\n"
    static let agentOwned = "[connection]\nid=Phone\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk-flags=1\n"

    /// A folder of keyfiles as copied out of sys-net.
    static func folder(_ files: [String: String]) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-networks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, content) in files { try TemplateRoot.write(folder + "/" + name, content, mode: 0o600) }
        return folder
    }

    @Test func secretsAreFoundAndNamesServedSafely() throws {
        let connections = try NetworkConnection.read(folder: try Self.folder([
            "Cafe.nmconnection": Self.plain, "Home WiFi.nmconnection": Self.wpa, "Work.nmconnection": Self.enterprise,
            "Phone.nmconnection": Self.agentOwned,
        ]))
        #expect(connections.map(\.name) == ["Cafe.nmconnection", "Home WiFi.nmconnection", "Phone.nmconnection", "Work.nmconnection"])
        // 802.1X passwords count (the original only looked for psk=); a -flags key is no secret.
        #expect(connections.map(\.hasSecret) == [false, true, false, true])
        #expect(connections[1].servedName == "Home_WiFi.nmconnection")
    }

    @Test func badFoldersAreRefusedNamingTheFile() throws {
        let clash = try Self.folder(["a b": Self.wpa, "a_b": Self.wpa])
        #expect(throws: ProvisioningError.self) { try NetworkConnection.read(folder: clash) }
        let link = try Self.folder([:])
        symlink("/etc/shadow", link + "/stolen.nmconnection")
        let error = try #require(throws: ProvisioningError.self) { try NetworkConnection.read(folder: link) }
        #expect(error.description.contains("stolen.nmconnection: not a regular file"))
        let binary = try Self.folder([:])
        try Data([0xff, 0xfe, 0x00]).write(to: URL(fileURLWithPath: binary + "/x.nmconnection"))
        #expect(throws: ProvisioningError.self) { try NetworkConnection.read(folder: binary) }
    }

    /// Plain connections go into the network qube's template tree (0600),
    /// secret ones into the keys qube, pinned in the template: the boot guard
    /// accepts them there, the split-file service hands them to core-net
    /// only, a changed copy is caught, and destroy takes everything back.
    @Test func connectionsReachTheNetworkQubeThroughTheKeysQube() throws {
        let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let keysRoot = system.scratch.directory + "/core-keys-root"
        try FileManager.default.createDirectory(atPath: keysRoot + "/home/user", withIntermediateDirectories: true)
        let executor = FolderExecutor(root: system.root.path, template: "debian-core", others: ["core-keys": keysRoot])
        let networks = try NetworkConnection.read(folder: try Self.folder(["Cafe.nmconnection": Self.plain, "Home WiFi.nmconnection": Self.wpa]))
        let planner = Planner(
            backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
            executor: executor, package: try system.root.package(), networks: networks)
        let originalTemplate = try system.root.snapshot()
        let applier = Applier(backend: system.backend, journalPath: system.scratch.journal, executor: executor)
        try applier.apply(try planner.plan(TemplateTests.manifest))
        #expect(try planner.plan(TemplateTests.manifest).operations.isEmpty)

        let tree = "/etc/protect/template.core-net/config/NM-system-connections/"
        #expect(try system.root.text(tree + "Cafe.nmconnection") == Self.plain)
        #expect(system.root.owner(tree + "Cafe.nmconnection") == (0, 0, 0o600))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: system.root.path + tree + "Home WiFi.nmconnection")
            == "/run/liteqube/Home_WiFi.nmconnection")
        let served = keysRoot + "/home/user/core-net/Home_WiFi.nmconnection"
        #expect(try String(contentsOfFile: served, encoding: .utf8) == Self.wpa)
        #expect(!(try system.root.snapshot().values.contains { $0.contains("correct horse") }), "no secret in the template")

        let rules = system.root.path + "/etc/protect"
        let boot = BootProtect.run(volume: .folder(keysRoot), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(boot.errors.isEmpty && boot.quarantined.isEmpty, "\(boot.errors) \(boot.quarantined)")
        let server = SplitFileServer(store: keysRoot + "/home/user")
        #expect(try server.serve(caller: "core-net", argument: Array("Home_WiFi.nmconnection".utf8)) == Array(Self.wpa.utf8))
        #expect(throws: SplitError.self) { try server.serve(caller: "core-usb", argument: Array("Home_WiFi.nmconnection".utf8)) }

        // The guard made the pinned copy immutable; a compromised core-keys (root) could still change it.
        try executor.place(.file(Array((Self.wpa + "psk=attacker\n").utf8)), at: "/home/user/core-net/Home_WiFi.nmconnection",
                           owner: "user", mode: 0o600, in: "core-keys")
        let tampered = BootProtect.run(volume: .folder(keysRoot), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(tampered.quarantined.map(\.path.description) == ["home/user/core-net/Home_WiFi.nmconnection"], "\(tampered.quarantined)")

        try applier.destroy()
        #expect(try system.root.snapshot() == originalTemplate)
        #expect(!FileManager.default.fileExists(atPath: keysRoot + "/home/user/core-net"))
    }

    @Test func aQubeWithoutAFolderIsAnError() throws {
        let executor = FolderExecutor(root: "/nonexistent", template: "debian-core")
        let error = try #require(throws: ProvisioningError.self) { try executor.inspect(["/x"], in: "core-keys") }
        #expect(error.description.contains("folder:DIR,core-keys=DIR"))
    }
}
