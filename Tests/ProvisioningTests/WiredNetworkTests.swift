import Foundation
import Testing

@testable import Provisioning

/// `wired_only` (docs/liteqube.md, "Wired network qube"): core-net on systemd-networkd, without
/// NetworkManager and its firmware.
@Suite struct WiredNetworkTests {
    static var manifest: Manifest {
        var manifest = Manifest(components: [.base, .network, .usb])
        manifest.wiredOnly = true
        return manifest
    }

    static let units = ["/etc/systemd/system/liteqube-wired-dns.path", "/etc/systemd/system/liteqube-wired-dns.service"]

    struct Setup {
        let system: TemplateTests.System

        init() throws { system = try TemplateTests.System(store: TemplateTests.provisionedStore) }

        func plan() throws -> Plan {
            try Planner(
                backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
                executor: system.executor, package: try system.root.package()
            ).plan(WiredNetworkTests.manifest)
        }
    }

    @Test func theWiredQubeIsLaidOutOnceAndDestroyTakesItBack() throws {
        let setup = try Setup()
        let original = try setup.system.root.snapshot()
        let plan = try setup.plan()
        let packages: [String] = plan.operations.flatMap { operation -> [String] in
            if case .installPackages(_, let packages) = operation { packages } else { [] }
        }
        #expect(packages.contains("qubes-core-agent-networking") && packages.contains("tor"))
        #expect(!packages.contains { ["network-manager", "qubes-core-agent-network-manager", "firmware-iwlwifi"].contains($0) })
        try setup.system.applier.apply(plan)
        #expect(try setup.plan().operations.isEmpty)

        let root = setup.system.root
        let network = try root.text("/etc/systemd/network/80-liteqube-wired.network")
        #expect(network.contains("[Match]\nType=ether\nName=!vif*\n") && network.contains("\nDHCP=yes\n") && network.contains("\nSendHostname=no\n"))
        let rcLocal = try root.text("/etc/protect/template.core-net/config/rc.local")
        #expect(rcLocal.hasSuffix("systemctl start qubes-iptables qubes-network systemd-networkd liteqube-wired-dns.path\n"))
        #expect(!rcLocal.contains("NetworkManager") && root.owner("/etc/protect/template.core-net/config/rc.local").mode == 0o755)
        #expect(try root.text("/usr/lib/liteqube/liteqube-tell-tor").contains("name=$(find /run/systemd/netif/leases -type f 2>/dev/null | grep -q . && echo wired)"))
        #expect(try root.text("/usr/lib/liteqube/liteqube-wired-dns").contains("liteqube-tell-tor wired"))
        for absent in ["/etc/NetworkManager", "/etc/protect/template.core-net/config/NM-system-connections", "/var/lib/NetworkManager/secret_key"] {
            #expect(!FileManager.default.fileExists(atPath: root.path + absent), "\(absent)")
        }
        try setup.system.applier.destroy()
        #expect(try root.snapshot() == original)
    }

    /// Stopped at each of the wired files' steps, apply resumes to the same template and destroy restores it.
    @Test func interruptedApplyResumesAndDestroyRestores() throws {
        let reference = try Setup()
        let plan = try reference.plan()
        try reference.system.applier.apply(plan)
        let final = try reference.system.root.snapshot()
        let steps = ["/etc/systemd/network/80-liteqube-wired.network", Self.units[1], "/etc/protect/template.core-net/config/rc.local"]
            .compactMap { TemplateTests.index(of: $0, in: plan) }
        #expect(steps.count == 3)
        for step in steps {
            for resume in [true, false] {
                let setup = try Setup()
                let original = try setup.system.root.snapshot()
                #expect(throws: ProvisioningError.self) {
                    try setup.system.applier.apply(try setup.plan()) { event in
                        if case .starting(let index, _, _) = event, index == step { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
                    }
                }
                if resume {
                    try setup.system.applier.apply(try setup.plan())
                    #expect(try setup.system.root.snapshot() == final, "resume after step \(step)")
                } else {
                    try setup.system.applier.destroy()
                    #expect(try setup.system.root.snapshot() == original, "destroy after step \(step)")
                }
            }
        }
    }

    @Test func savedNetworksNeedNetworkManager() throws {
        var manifest = Self.manifest
        manifest.networks = "saved"
        let error = try #require(throws: ProvisioningError.self) { try DesiredState(manifest, templates: ["debian-13-minimal"], qubes: [], kernels: []) }
        #expect(error.description.contains("wired_only"))
        let parsed = try #require(throws: Manifest.Error.self) { try Manifest.parse("components: [base, network]\nwired_only: 1\n") }
        #expect(parsed.description == "line 2: wired_only must be true or false")
    }

    /// The units pass `systemd-analyze verify` in the applied template, with this machine's systemd units
    /// laid in beside them (the folder template has no systemd of its own, so `sysinit.target` would be missing).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")
            && FileManager.default.fileExists(atPath: "/usr/lib/systemd/system/sysinit.target"), "systemd is not installed"))
    func theUnitsPassSystemdAnalyzeVerify() throws {
        let setup = try Setup()
        try setup.system.applier.apply(try setup.plan())
        let systemUnits = setup.system.root.path + "/usr/lib/systemd/system"
        try FileManager.default.createDirectory(atPath: setup.system.root.path + "/usr/lib/systemd", withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: systemUnits) {
            try FileManager.default.copyItem(atPath: "/usr/lib/systemd/system", toPath: systemUnits)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", "--root=" + setup.system.root.path] + Self.units
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && text.isEmpty, "\(text)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func theScriptsPassShellcheck() throws {
        let texts = try TemplateTextTests.texts(Self.manifest)
        for path in ["/usr/lib/liteqube/liteqube-wired-dns", "/usr/lib/liteqube/liteqube-tell-tor", "/etc/protect/template.core-net/config/rc.local"] {
            let script = try #require(texts.first { $0.path == path }, "\(path)").text
            #expect(try Shellcheck.passes(script), "\(path)")
        }
    }
}
