import QubesStore

extension Role {
    /// The VPN qube: a network qube whose client qubes reach the network through its tunnel only.
    public static let vpn = Role(rawValue: "vpn")
}

extension Manifest {
    /// The kind of tunnel core-vpn brings up.
    public enum VPNKind: String, Sendable, Hashable, CaseIterable {
        case openvpn, wireguard
    }

    public var vpnKind: VPNKind {
        get { self[VPN.kind] }
        set { self[VPN.kind] = newValue }
    }

    /// The profile the keys qube serves core-vpn (`lq addkey file core-vpn NAME`): an OpenVPN
    /// configuration with its keys inline, or a WireGuard one. `nil`: core-vpn starts without a tunnel.
    public var vpnProfile: String? {
        get { self[VPN.profile] }
        set { self[VPN.profile] = newValue }
    }

    /// The OpenVPN user name; its password is the keys qube's `SplitPassword+<profile>`.
    public var vpnUser: String? {
        get { self[VPN.user] }
        set { self[VPN.user] = newValue }
    }

    /// The IPv4 address the client qubes' DNS queries go to, through the tunnel.
    public var vpnDNS: String {
        get { self[VPN.dns] }
        set { self[VPN.dns] = newValue }
    }
}

/// VPN (docs/liteqube.md, "VPN qube"): core-vpn, a disposable network qube behind
/// fw-net with an OpenVPN or WireGuard tunnel and a kill switch.
enum VPN {
    static let kind = Setting<Manifest.VPNKind>("vpn_kind", default: .openvpn)
    static let profile = Setting<String?>.text("vpn_profile") { VPN.nameProblem($0) }
    static let user = Setting<String?>.text("vpn_user") { VPN.nameProblem($0) }
    static let dns = Setting<String>.text("vpn_dns", default: "1.1.1.1") { VPN.addressProblem($0) }

    /// Names reach a shell script and a qrexec argument: letters, digits, `.`, `_`, `-`, `@`, at most 64.
    static func nameProblem(_ name: String) -> String? {
        let allowed = name.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "@")
        }
        guard allowed, (1...64).contains(name.utf8.count), name.first != "-", name.first != "." else {
            return "must be 1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '-' or '.'"
        }
        return nil
    }

    /// A dotted IPv4 address, four numbers 0 to 255 without leading zeros.
    static func addressProblem(_ address: String) -> String? {
        let parts = address.split(separator: ".", omittingEmptySubsequences: false)
        let valid = parts.count == 4 && parts.allSatisfy { part in
            guard let number = Int(part), (0...255).contains(number) else { return false }
            return String(number) == part
        }
        return valid ? nil : "is not an IPv4 address"
    }

    static func qubes(_ desired: inout DesiredBuilder) throws {
        let manifest = desired.manifest
        guard manifest.includes(.network) else {
            throw ProvisioningError(.missingPrerequisite, "the vpn component's qube uses fw-net as its netvm: add network to components")
        }
        if manifest.vpnUser != nil, manifest.vpnKind != .openvpn {
            throw ProvisioningError(.invalidArgument, "vpn_user is the OpenVPN user name; a \(manifest.vpnKind.rawValue) tunnel has none")
        }
        let (dvm, fwNet) = (desired.name(.dvm), desired.name(.fwNet))
        desired.add(.vpn, .dispVM) {
            $0.template = dvm
            $0.virtMode = .pvh
            $0.netvm = fwNet
            $0.providesNetwork = true
            // The kill switch and the tunnel run in this qube only (docs/liteqube.md, "VPN qube").
            $0.features["service.liteqube-vpn"] = "1"
        }
    }

    static func trees(_ overlay: inout Overlay) {
        let manifest = overlay.manifest
        overlay.values["vpn_dns"] = manifest.vpnDNS
        // The script holds the chosen tunnel only: it names no program the template lacks.
        overlay.values["vpn_tunnel"] = overlay.fragment("/fragments/" + manifest.vpnKind.rawValue)
        overlay.script(Overlay.programFolder + "/liteqube-vpn")
        overlay.file(Overlay.programFolder + "/liteqube-vpn.nft")
        overlay.directory("/etc/systemd/system/qubes-iptables.service.d")
        overlay.file("/etc/systemd/system/qubes-iptables.service.d/50-liteqube-vpn.conf")
        overlay.file("/etc/systemd/system/liteqube-vpn.service")
        let tree = overlay.qubeTemplate(.vpn)
        let settings = ["profile=\(manifest.vpnProfile ?? "")", "user=\(manifest.vpnUser ?? "")"]
        overlay.file(tree + "/config/liteqube-vpn.conf", content: settings.joined(separator: "\n") + "\n", mode: 0o600)
    }

    static func policy(_ policy: inout PolicyBuilder) {
        policy.notify([.vpn], extra: ["liteqube.SignalVPN"])
        let keys = policy.manifest.name(.keys)
        policy.allow("liteqube.SplitFile", from: [.vpn], to: keys, action: "ask default_target=\(keys)")
        if policy.manifest.vpnUser != nil {
            policy.allow("liteqube.SplitPassword", from: [.vpn], to: keys, action: "ask default_target=\(keys)")
        }
    }
}

extension Component {
    public static let vpn = Component(id: "vpn") { vpn in
        vpn.roles = [RoleSpec(.vpn, name: "core-vpn", presence: .onDemand, memory: 176)]
        vpn.settings = [VPN.kind.erased, VPN.profile.erased, VPN.user.erased, VPN.dns.erased]
        vpn.qubes = VPN.qubes
        vpn.packages = { manifest in
            ["nftables", "qubes-core-agent-networking", manifest.vpnKind == .openvpn ? "openvpn" : "wireguard-tools"].sorted()
        }
        vpn.trees = VPN.trees
        vpn.policy = VPN.policy
        vpn.dom0Services = { _ in
            [Dom0Service(name: "liteqube.SignalVPN", urgency: "normal", milliseconds: 3000, icon: "network-vpn", text: "vpn/dom0/text/vpn")]
        }
    }
}
