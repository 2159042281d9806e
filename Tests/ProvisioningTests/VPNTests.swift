import AdminServer
import Foundation
import Provisioning
import QubesAdmin
import QrexecPolicy
import QubesStore
import Testing

@testable import Provisioning

/// The vpn component (docs/liteqube.md, "VPN qube"): core-vpn, its settings, policy, template files and
/// their undo.
@Suite struct VPNTests {
    static func manifest(_ kind: Manifest.VPNKind = .openvpn, user: String? = "alice") -> Manifest {
        var manifest = Manifest(components: [.base, .network, .usb, .vpn])
        manifest.vpnKind = kind
        manifest.vpnProfile = "office"
        manifest.vpnUser = user
        return manifest
    }

    @Test func offlineApplyMakesCoreVPNThenNothingAndDestroyRestores() throws {
        let scratch = try Scratch()
        let original = try scratch.canonical()
        let backend = try scratch.apply(Self.manifest())
        let store = try Store.load(xml: [UInt8](try scratch.bytes(scratch.store))).store
        let vpn = try #require(store["core-vpn"])
        #expect(vpn.vmClass == .dispVM)
        let expected = [
            "template": "core-dvm", "label": "gray", "memory": "176", "maxmem": "0", "vcpus": "1", "virt_mode": "pvh",
            "netvm": "fw-net", "provides_network": "True",
        ]
        for (name, value) in expected { #expect(vpn.properties[name] == value, "\(name)") }
        #expect(vpn.properties["autostart"] != "True" && vpn.properties["template_for_dispvms"] != "True")
        // servicevm: qubesd's mark of a qube that provides network.
        #expect(Dictionary(uniqueKeysWithValues: vpn.features.map { ($0.key, $0.value) })
            == ["service.liteqube-vpn": "1", "no-monitor-layout": "1", "servicevm": "1"])
        #expect(vpn.devices.values.allSatisfy { $0.isEmpty })
        let report = StoreCheck.check([UInt8](try scratch.bytes(scratch.store)))
        #expect(report.errors.isEmpty && report.warnings.isEmpty, "\(report.warnings)")
        #expect(try scratch.planner(backend).plan(Self.manifest()).operations.isEmpty)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try scratch.canonical() == original)
        #expect(try scratch.policyFiles() == ["30-user.policy"])
    }

    /// Stopped before each step that concerns core-vpn, apply then reaches the store an uninterrupted apply makes (one
    /// backend for both runs, so the uuids continue the same sequence), and destroy the original.
    @Test func interruptedApplyResumesOrIsUndone() throws {
        let reference = try Scratch()
        try reference.apply(Self.manifest())
        let final = try reference.canonical()
        let operations = try reference.planner(OfflineBackend(path: Scratch().store)).plan(Self.manifest()).operations
        let steps = operations.indices.filter { "\(operations[$0])".contains("core-vpn") }
        #expect(steps.count >= 3)
        for step in steps {
            let scratch = try Scratch()
            let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
            #expect(throws: ProvisioningError.self) { try scratch.apply(Self.manifest(), backend: backend, stopAt: step) }
            try scratch.apply(Self.manifest(), backend: backend)
            #expect(try scratch.canonical() == final, "resumed after step \(step)")

            let partial = try Scratch()
            let original = try partial.canonical()
            #expect(throws: ProvisioningError.self) { try partial.apply(Self.manifest(), stopAt: step) }
            try Applier(backend: OfflineBackend(path: partial.store), journalPath: partial.journal).destroy()
            #expect(try partial.canonical() == original, "destroy after step \(step)")
        }
    }

    @Test func policyLetsCoreVPNReachItsSecretsAndDom0Only() throws {
        for (manifest, passwords) in [(Self.manifest(), true), (Self.manifest(.wireguard, user: nil), false)] {
            let scratch = try Scratch()
            try scratch.apply(manifest)
            let evaluator = try scratch.policyEvaluator()
            let expectations: [(String, String, String, String)] = [
                ("liteqube.SplitFile+office", "core-vpn", "core-keys", "ask"),
                ("liteqube.SplitPassword+office", "core-vpn", "core-keys", passwords ? "ask" : "deny"),
                ("liteqube.SplitPassword+office", "core-vpn", "dom0", "deny"),
                ("liteqube.SplitFile+office", "core-tor", "core-keys", "deny"),
                ("liteqube.SplitPassword+office", "work", "core-keys", "deny"),
                ("liteqube.SignalVPN+connected", "core-vpn", "dom0", "allow"),
                ("liteqube.SignalVPN+connected", "core-net", "dom0", "deny"),
                ("liteqube.SignalVPN+connected", "work", "dom0", "deny"),
                ("liteqube.Message", "core-vpn", "dom0", "allow"),
                ("liteqube.SplitSSH", "core-vpn", "core-keys", "deny"),
            ]
            expectDecisions(evaluator, expectations, "\(manifest.vpnKind): ")
        }
    }

    @Test func manifestKeysAreTypedAndRefusedWithTheirLine() throws {
        let manifest = try Manifest.parse("components: [base, network, vpn]\nvpn_kind: wireguard\nvpn_profile: home-wg\nvpn_dns: 9.9.9.9\n")
        #expect(manifest.vpnKind == .wireguard && manifest.vpnProfile == "home-wg" && manifest.vpnDNS == "9.9.9.9" && manifest.vpnUser == nil)
        #expect(try Manifest.parse("components: [base, network, vpn]\n").vpnDNS == "1.1.1.1")
        let base = "components: [base, network, vpn]\n"
        expectRefusal(of: base + "vpn_kind: ssh\n", line: 2, message: "vpn_kind", by: { try Manifest.parse($0) })
        expectRefusal(of: base + "vpn_profile: \"a'b\"\n", line: 2, message: "vpn_profile", by: { try Manifest.parse($0) })
        expectRefusal(of: base + "vpn_profile: -x\n", line: 2, message: "vpn_profile", by: { try Manifest.parse($0) })
        expectRefusal(of: base + "vpn_user: \"a b\"\n", line: 2, message: "vpn_user", by: { try Manifest.parse($0) })
        for address in ["1.1.1", "1.1.1.256", "01.1.1.1", "1.1.1.1; drop", "::1"] {
            expectRefusal(of: base + "vpn_dns: \"\(address)\"\n", line: 2, message: "is not an IPv4 address", by: { try Manifest.parse($0) })
        }
    }

    @Test func planRefusesAVPNWithoutItsNetworkOrAWireGuardUser() throws {
        let scratch = try Scratch()
        let planner = scratch.planner(OfflineBackend(path: scratch.store))
        var alone = Manifest(components: [.base, .vpn])
        alone.vpnProfile = "office"
        #expect { try planner.plan(alone) } throws: { "\($0)".contains("add network to components") }
        #expect { try planner.plan(Self.manifest(.wireguard)) } throws: { "\($0)".contains("vpn_user") }
    }

    @Test func templateFilesCarryTheSettingsAndTheKillSwitchAndAreUndone() throws {
        for kind in Manifest.VPNKind.allCases {
            let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
            let original = try system.root.snapshot()
            var manifest = Self.manifest(kind, user: kind == .openvpn ? "alice" : nil)
            manifest.vpnDNS = "9.9.9.9"
            let planner = Planner(
                backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
                executor: system.executor, package: try system.root.package())
            let plan = try planner.plan(manifest)
            let packages = plan.operations.flatMap { operation -> [String] in
                if case .installPackages(_, let packages) = operation { packages } else { [] }
            }
            #expect(packages.contains(kind == .openvpn ? "openvpn" : "wireguard-tools"))
            #expect(!packages.contains(kind == .openvpn ? "wireguard-tools" : "openvpn"))
            try system.applier.apply(plan)
            #expect(try planner.plan(manifest).operations.isEmpty)
            let root = system.root
            let settings = "/etc/protect/template.core-vpn/config/liteqube-vpn.conf"
            #expect(try root.text(settings) == "profile=office\nuser=\(kind == .openvpn ? "alice" : "")\n")
            #expect(root.owner(settings).mode == 0o600)
            let killSwitch = try root.text("/usr/lib/liteqube/liteqube-vpn.nft")
            #expect(killSwitch.contains("dnat ip to 9.9.9.9") && killSwitch.contains("policy drop"))
            let script = try root.text("/usr/lib/liteqube/liteqube-vpn")
            #expect(script.contains("qrexec-client-vm core-keys \"liteqube.SplitFile+$profile\""))
            // Only the chosen tunnel's program is named.
            #expect(script.contains("--auth-user-pass \"$run/auth\"") == (kind == .openvpn) && script.contains("wg-quick up") == (kind == .wireguard))
            #expect(!script.contains("{{"))
            #expect(try root.text("/etc/systemd/system/qubes-iptables.service.d/50-liteqube-vpn.conf")
                .contains("ExecStartPost=/usr/lib/liteqube/liteqube-vpn kill-switch"))
            try system.applier.destroy()
            #expect(try root.snapshot() == original)
        }
    }
}
