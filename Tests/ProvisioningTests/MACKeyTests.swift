import BootProtect
import Foundation
import LQCommon
import SplitServices
import Testing

@testable import Provisioning

/// The disposable network qube's MAC key (docs/liteqube.md, "MAC addresses"): generated once by
/// apply into core-keys, pinned in the template, fetched at boot; never in the template itself.
@Suite struct MACKeyTests {
    static let keyPath = "/home/user/core-net/secret_key"
    static let pinPath = "/etc/protect/checksum.core-keys/home/user/core-net/secret_key"
    static let rcLocal = "/etc/protect/template.core-net/config/rc.local"

    /// The template's folder, core-keys' own folder, and a planner and applier over both.
    struct Setup {
        let system: TemplateTests.System
        let keysRoot: String
        let executor: FolderExecutor

        /// `provisioned`: every qube already made (of the default manifest), else the default install.
        init(provisioned: Bool = true) throws {
            system = try TemplateTests.System(store: provisioned ? TemplateTests.provisionedStore : nil)
            keysRoot = system.scratch.directory + "/core-keys-root"
            try FileManager.default.createDirectory(atPath: keysRoot + "/home/user", withIntermediateDirectories: true)
            executor = FolderExecutor(root: system.root.path, template: "debian-core", others: ["core-keys": keysRoot])
        }

        func plan(_ manifest: Manifest = TemplateTests.manifest) throws -> Plan {
            try Planner(
                backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
                executor: executor, package: try system.root.package()
            ).plan(manifest)
        }

        var applier: Applier { Applier(backend: system.backend, journalPath: system.scratch.journal, executor: executor) }

        /// core-keys' key, when it has one.
        var key: [UInt8]? { FileManager.default.contents(atPath: keysRoot + MACKeyTests.keyPath).map { [UInt8]($0) } }

        /// Whether the template's pin is the pin of core-keys' key.
        func pinMatches() throws -> Bool {
            guard let key else { return false }
            return try system.root.text(MACKeyTests.pinPath) == String(decoding: ChecksumPin(of: key).fileBytes, as: UTF8.self)
        }
    }

    @Test func theKeyIsGeneratedIntoTheKeysQubePinnedAndServedToTheNetworkQubeOnly() throws {
        let setup = try Setup()
        let originalTemplate = try setup.system.root.snapshot()
        let plan = try setup.plan()
        #expect(plan.operations.contains { if case .place("core-keys", let entry) = $0 { entry.path == Self.keyPath } else { false } })
        try setup.applier.apply(plan)
        #expect(try setup.plan().operations.isEmpty, "a second plan reuses the key core-keys holds")

        let key = try #require(setup.key)
        #expect(key.count == MACSecretKey.size && MACSecretKey(key) != nil)
        #expect(setup.system.root.owner(Self.pinPath) == (1000, 1000, 0o600))
        #expect(try setup.pinMatches())
        let text = String(decoding: key, as: UTF8.self)
        #expect(!(try setup.system.root.snapshot().values.contains { $0.contains(text) }), "the key is never in the template")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: setup.system.root.path + "/var/lib/NetworkManager/secret_key")
            == "/run/liteqube/secret_key")
        let config = try setup.system.root.text("/etc/NetworkManager/conf.d/80-liteqube-mac.conf")
        #expect(config.contains("\nwifi.cloned-mac-address=stable\n") && config.contains("\nethernet.cloned-mac-address=stable\n"))
        let rcLocal = try setup.system.root.text(Self.rcLocal)
        let fetch = try #require(rcLocal.range(of: "/usr/lib/liteqube/lq-splitfile get --from core-keys --output /run/liteqube/secret_key secret_key\n"))
        #expect(fetch.upperBound <= (rcLocal.range(of: "NetworkManager\n", options: .backwards)?.lowerBound ?? rcLocal.startIndex),
                "fetched before NetworkManager starts")

        let rules = setup.system.root.path + "/etc/protect"
        let boot = BootProtect.run(volume: .folder(setup.keysRoot), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(boot.errors.isEmpty && boot.quarantined.isEmpty, "\(boot.errors) \(boot.quarantined)")
        let server = SplitFileServer(store: setup.keysRoot + "/home/user")
        #expect(try server.serve(caller: "core-net", argument: Array("secret_key".utf8)) == key)
        #expect(throws: SplitError.self) { try server.serve(caller: "core-tor", argument: Array("secret_key".utf8)) }

        // A key changed in core-keys no longer matches the pin: the guard quarantines it at core-keys' boot.
        try setup.executor.place(.file(Array(MACSecretKey.generate().content.utf8)), at: Self.keyPath, owner: "user", mode: 0o600, in: "core-keys")
        let tampered = BootProtect.run(volume: .folder(setup.keysRoot), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(tampered.quarantined.map(\.path.description) == ["home/user/core-net/secret_key"], "\(tampered.quarantined)")

        try setup.applier.destroy()
        #expect(try setup.system.root.snapshot() == originalTemplate)
        #expect(setup.key == nil && !FileManager.default.fileExists(atPath: setup.keysRoot + "/home/user/core-net"))

        // Applied again, a new key: nothing of the old one is kept in dom0.
        try setup.applier.apply(try setup.plan())
        #expect(try #require(setup.key) != key)
        #expect(try setup.pinMatches())
    }

    /// A key core-keys holds that is not one (wrong length, not hex) is replaced, pin and all.
    @Test func aKeyThatIsNoKeyIsReplaced() throws {
        let setup = try Setup()
        try FileManager.default.createDirectory(atPath: setup.keysRoot + "/home/user/core-net", withIntermediateDirectories: true)
        try TemplateRoot.write(setup.keysRoot + Self.keyPath, "short", mode: 0o600)
        try setup.applier.apply(try setup.plan())
        #expect(try setup.pinMatches() && setup.key?.count == MACSecretKey.size)
        #expect(MACSecretKey(Array("short".utf8)) == nil)
        #expect(MACSecretKey(Array(String(repeating: "A", count: MACSecretKey.size).utf8)) == nil, "uppercase is not what apply writes")
        try setup.applier.destroy()
        #expect(try String(contentsOfFile: setup.keysRoot + Self.keyPath, encoding: .utf8) == "short", "destroy puts back what was there")
    }

    /// Stopped at any step around the key's, apply resumes to a key whose pin matches, and destroy
    /// takes the key and the pin away.
    @Test func interruptedApplyResumesToAMatchingPinAndDestroyRemovesTheKey() throws {
        let plan = try Setup().plan()
        let reference = plan.operations
        let pin = try #require(TemplateTests.index(of: Self.pinPath, in: plan))
        let key = try #require(reference.firstIndex { if case .place("core-keys", let entry) = $0 { entry.path == Self.keyPath } else { false } })
        for step in Set([pin - 1, pin, pin + 1, key - 1, key, key + 1]).sorted() where reference.indices.contains(step) {
            for resume in [true, false] {
                let setup = try Setup()
                let original = try setup.system.root.snapshot()
                #expect(throws: ProvisioningError.self) {
                    try setup.applier.apply(try setup.plan()) { event in
                        if case .starting(let index, _, _) = event, index == step { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
                    }
                }
                if resume {
                    try setup.applier.apply(try setup.plan())
                    #expect(try setup.pinMatches(), "resume after step \(step)")
                    #expect(try setup.plan().operations.isEmpty, "resume after step \(step)")
                } else {
                    try setup.applier.destroy()
                    #expect(try setup.system.root.snapshot() == original, "destroy after step \(step)")
                    #expect(setup.key == nil, "destroy after step \(step)")
                }
            }
        }
    }

    /// `stable_mac: false` leaves NetworkManager as it is; an AppVM core-net keeps its own key in its
    /// bind-dir, so it gets the setting but no key from core-keys.
    @Test func withoutStableMACOrWithAnAppVMNetworkQubeCoreKeysHoldsNoKey() throws {
        var off = TemplateTests.manifest
        off.stableMAC = false
        var appVM = TemplateTests.manifest
        appVM.disposableNetVM = false
        for manifest in [off, appVM] {
            let setup = try Setup(provisioned: false)
            let plan = try setup.plan(manifest)
            #expect(!plan.operations.contains { $0.insideQube == "core-keys" })
            let paths = plan.operations.compactMap { if case .place(_, let entry) = $0 { entry.path } else { nil } }
            #expect(!paths.contains(Self.pinPath) && !paths.contains("/var/lib/NetworkManager/secret_key"))
            #expect(paths.contains("/etc/NetworkManager/conf.d/80-liteqube-mac.conf") == manifest.stableMAC)
            let rcLocal = try #require(try TemplateTextTests.texts(manifest).first { $0.path == Self.rcLocal }).text
            #expect(!rcLocal.contains("secret_key secret_key") && rcLocal.contains("\n# "))
        }
        let error = try #require(throws: Manifest.Error.self) { try Manifest.parse("components: [base, network]\nstable_mac: sometimes\n") }
        #expect(error.description == "line 2: stable_mac must be true or false")
    }

    /// core-net's rc.local, which fetches the key, passes shellcheck in every layout (CI installs shellcheck).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func theNetworkQubesRcLocalPassesShellcheck() throws {
        var off = TemplateTests.manifest
        off.stableMAC = false
        var appVM = TemplateTests.manifest
        appVM.disposableNetVM = false
        for manifest in [TemplateTests.manifest, off, appVM] {
            let script = try #require(try TemplateTextTests.texts(manifest).first { $0.path == Self.rcLocal }).text
            #expect(try Shellcheck.passes(script), "\(script)")
        }
    }
}

/// shellcheck on a script's text (`-S warning -s sh`, as the realistic root's check runs it).
enum Shellcheck {
    static func passes(_ script: String) throws -> Bool {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lq-shellcheck-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try script.write(toFile: file, atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/shellcheck")
        process.arguments = ["-S", "warning", "-s", "sh", file]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
