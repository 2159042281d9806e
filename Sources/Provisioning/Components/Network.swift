import QubesStore

extension Role {
    /// The network qube: holds the network cards.
    public static let net = Role(rawValue: "net")
    /// Tor, and the clock.
    public static let tor = Role(rawValue: "tor")
    /// Downloads updates for dom0 and the templates, over Tor.
    public static let update = Role(rawValue: "update")
    /// The firewall in front of the network qube: the default netvm.
    public static let fwNet = Role(rawValue: "fw-net")
    /// The firewall in front of Tor.
    public static let fwTor = Role(rawValue: "fw-tor")
    /// The mirage firewall's template and disposable template.
    public static let fwBase = Role(rawValue: "fw-base")
    public static let fwDvm = Role(rawValue: "fw-dvm")
}

extension Manifest {
    public enum Firewall: String, Sendable, Hashable, CaseIterable {
        case linux, mirage
    }

    /// `nil`: linux for the default profile, mirage for low-memory.
    public var firewall: Firewall? {
        get { self[Network.firewall] }
        set { self[Network.firewall] = newValue }
    }

    public var effectiveFirewall: Firewall { firewall ?? (profile == .lowMemory ? .mirage : .linux) }

    /// core-net is a named disposable (else an AppVM of debian-core).
    public var disposableNetVM: Bool {
        get { self[Network.disposableNetVM] }
        set { self[Network.disposableNetVM] = newValue }
    }

    /// A dom0 folder of NetworkManager keyfiles for the network qube (for
    /// example copied out of sys-net); relative to the manifest's folder.
    public var networks: String? {
        get { self[Network.networks] }
        set { self[Network.networks] = newValue }
    }

    /// The Tor qube (the clockvm either way) sets its time from servers (docs/liteqube.md, "The clock").
    public var setTime: Bool {
        get { self[Network.setTime] }
        set { self[Network.setTime] = newValue }
    }

    /// Onion services the clock is taken from once Tor is connected.
    public var timeTorServers: [String] {
        get { self[Network.timeTorServers] }
        set { self[Network.timeTorServers] = newValue }
    }

    /// core-net gives each network its own stable random MAC (docs/liteqube.md, "MAC addresses").
    public var stableMAC: Bool {
        get { self[Network.stableMAC] }
        set { self[Network.stableMAC] = newValue }
    }

    /// dom0 and debian-core take their updates from Qubes' and Debian's onion mirrors (docs/liteqube.md,
    /// "Onion updates").
    public var onionUpdates: Bool {
        get { self[Network.onionUpdates] }
        set { self[Network.onionUpdates] = newValue }
    }

    /// core-net is a small wired-only qube: systemd-networkd, no NetworkManager (docs/liteqube.md, "Wired
    /// network qube").
    public var wiredOnly: Bool {
        get { self[Network.wiredOnly] }
        set { self[Network.wiredOnly] = newValue }
    }

    /// Servers asked directly, around Tor, when the clock is too far off for Tor to connect; empty: never.
    public var timeClearnetServers: [String] {
        get { self[Network.timeClearnetServers] }
        set { self[Network.timeClearnetServers] = newValue }
    }
}

/// Network (docs/liteqube.md, "Network qubes"): core-net, the firewalls, core-tor
/// and core-update, replacing sys-net, sys-firewall and sys-whonix.
enum Network {
    static let firewall = Setting<Manifest.Firewall?>.choice("firewall")
    static let disposableNetVM = Setting<Bool>("disposable_netvm", default: true)
    static let networks = Setting<String?>.text("networks")
    static let setTime = Setting<Bool>("set_time", default: true)
    static let stableMAC = Setting<Bool>("stable_mac", default: true)
    static let onionUpdates = Setting<Bool>("onion_updates", default: false)
    static let wiredOnly = Setting<Bool>("wired_only", default: false)
    static let timeTorServers = Setting<[String]>.list("time_tor_servers", default: TimeServer.onion, minimum: 1, limit: TimeServer.limit) {
        TimeServer.problem($0, onion: true)
    }
    static let timeClearnetServers = Setting<[String]>.list("time_clearnet_servers", default: TimeServer.clearnet, limit: TimeServer.limit) {
        TimeServer.problem($0, onion: false)
    }

    /// A firewall's memory: the mirage unikernel needs far less.
    @Sendable static func firewallMemory(_ manifest: Manifest) -> Int { manifest.effectiveFirewall == .mirage ? 32 : 128 }

    static func qubes(_ desired: inout DesiredBuilder) throws {
        let manifest = desired.manifest
        let mirage = manifest.effectiveFirewall == .mirage
        if mirage, let kernels = desired.kernels, !kernels.contains("mirage-firewall") {
            throw ProvisioningError(
                .missingPrerequisite,
                "the mirage firewall needs its kernel in /var/lib/qubes/vm-kernels/mirage-firewall (install qubes-mirage-firewall in dom0), or set firewall: linux")
        }
        if manifest.wiredOnly, manifest.networks != nil {
            throw ProvisioningError(.invalidNetwork, "networks: holds NetworkManager connections, which a wired_only core-net has no NetworkManager for; leave out one of them")
        }
        let (core, dvm, net, tor) = (desired.name(.core), desired.name(.dvm), desired.name(.net), desired.name(.tor))
        let sysNet = desired.devices(replacedBy: .net)
        desired.add(.net, manifest.disposableNetVM ? .dispVM : .appVM) {
            $0.template = manifest.disposableNetVM ? dvm : core
            $0.virtMode = .hvm
            $0.providesNetwork = true
            $0.autostart = true
            $0.devicesFrom = sysNet
        }
        var firewallTemplate = dvm
        if mirage {
            let fwBase = desired.name(.fwBase)
            desired.add(.fwBase, .templateVM, label: .template) {
                $0.virtMode = .pvh
                $0.kernel = "mirage-firewall"
            }
            desired.add(.fwDvm, .appVM) {
                $0.template = fwBase
                $0.virtMode = .pvh
                $0.templateForDispvms = true
            }
            firewallTemplate = desired.name(.fwDvm)
        }
        let fwNet = desired.name(.fwNet)
        desired.add(.fwNet, .dispVM) {
            $0.template = firewallTemplate
            $0.netvm = net
            $0.providesNetwork = true
        }
        desired.add(.tor, .appVM) {
            $0.template = core
            $0.virtMode = .pvh
            $0.netvm = fwNet
            $0.providesNetwork = true
        }
        desired.add(.fwTor, .dispVM) {
            $0.template = firewallTemplate
            $0.netvm = tor
            $0.providesNetwork = true
        }
        let fwTor = desired.name(.fwTor)
        desired.add(.update, .dispVM) {
            $0.template = dvm
            $0.vcpus = 2
            $0.virtMode = .pvh
            $0.netvm = fwTor
        }
        desired.globals = [("default_netvm", fwNet), ("updatevm", desired.name(.update)), ("clockvm", tor)]
        desired.retire(for: .net, prohibitStart: true)
        desired.retire(for: .fwNet, prohibitStart: false)
        desired.retire(for: .tor, prohibitStart: false)
    }

    /// The onion sources program (docs/liteqube.md, "Onion updates"), placed with base's programs.
    static func system(_ overlay: inout Overlay) {
        guard overlay.manifest.onionUpdates else { return }
        overlay.values["debian_onion"] = OnionMirrors.debian
        overlay.values["qubes_onion"] = OnionMirrors.qubes
        overlay.script(Overlay.programFolder + "/onion-sources")
    }

    /// Once the packages are in (they came from the clearnet sources, before Tor ran), debian-core's
    /// apt sources move to the onion mirrors; destroy puts the files back.
    static func settle(_ overlay: inout Overlay) {
        guard overlay.manifest.onionUpdates else { return }
        let arguments = "/etc/apt /var/lib/liteqube/onion-sources"
        let program = Overlay.programFolder + "/onion-sources"
        overlay.command(TemplateCommand(
            summary: "take debian-core's updates from the onion mirrors", run: "\(program) apply \(arguments)",
            check: "\(program) check \(arguments)", undo: "\(program) restore \(arguments)"))
    }

    static func trees(_ overlay: inout Overlay) {
        let manifest = overlay.manifest
        let protect = Overlay.protect
        overlay.values["resolv_conf"] = overlay.fragment("/fragments/resolv-conf")
        overlay.link("/etc/resolv.conf", "/run/resolv.conf")

        let net = overlay.qubeTemplate(.net, rcLocal: false)
        // Intel's Wi-Fi modules are unloaded before suspend (Qubes' advice for them); other chips need none.
        let intelWifi = !manifest.wiredOnly && manifest.effectiveFirmware.contains("firmware-iwlwifi")
        overlay.file(net + "/config/suspend-module-blacklist", content: intelWifi ? overlay.text(net + "/config/suspend-module-blacklist") : "")
        let netList = "\(protect)/whitelist.{{net}}"
        overlay.directory(netList)
        // How liteqube-tell-tor names the network that is up.
        overlay.values["current_network"] = manifest.wiredOnly
            ? "find /run/systemd/netif/leases -type f 2>/dev/null | grep -q . && echo wired"
            : "nmcli -t -f NAME,DEVICE connection show --active | grep -v ':lo$' | head -n 1 | sed 's/:[^:]*$//'"
        torNetworkState(&overlay)
        if manifest.wiredOnly {
            wired(&overlay, tree: net)
        } else {
            networkManager(&overlay, tree: net, whitelist: netList)
        }

        // The firewalls run qubes-firewall, so per-qube firewall rules hold (docs/liteqube.md, "Network qubes and Tor").
        for role in [Role.fwNet, .fwTor] where manifest.effectiveFirewall == .linux {
            let firewall = overlay.qubeTemplate(role, rcLocal: false)
            overlay.file(firewall + "/config/rc.local", content: overlay.text("/fragments/firewall-rc.local"), mode: 0o755)
        }

        let tor = overlay.qubeTemplate(.tor, rcLocal: false)
        clock(&overlay)
        overlay.directory(tor + "/config/qubes-bind-dirs.d")
        overlay.file(tor + "/config/qubes-bind-dirs.d/50_liteqube.conf")
        overlay.script(tor + "/config/rc.local")
        overlay.file(tor + "/config/liteqube-tor.nft")
        let torList = "\(protect)/whitelist.{{tor}}"
        overlay.directory(torList)
        overlay.directories(torList, "bind-dirs/var/lib/tor", owner: "debian-tor", mode: 0o2700)
        overlay.file(torList + "/bind-dirs/var/lib/tor/.any_file", content: "")
        overlay.file(torList + "/bind-dirs/var/lib/tor/.any_dir", content: "")
        overlay.directories(torList, "config/tor", mode: 0o700)
        overlay.file(torList + "/config/tor/.any_file", content: "")
        overlay.directory(torList + "/config/tor/var-lib", mode: 0o700)
        overlay.file(torList + "/config/tor/var-lib/.any_dir", content: "")
        overlay.directory("/etc/tor")
        overlay.file("/etc/tor/torrc")

        overlay.values["idle_time"] = String(manifest.idleTime)
        let update = overlay.qubeTemplate(.update)
        overlay.directory(update + "/usrlocal", mode: 0o775)
        overlay.directory(update + "/usrlocal/bin")
        overlay.script(update + "/usrlocal/bin/liteqube-idle-poweroff")
    }

    /// The clock (docs/liteqube.md, "The clock"): the Tor qube's rc.local (laid out after this) feeds Tor's
    /// log to `liteqube-clock`.
    static func clock(_ overlay: inout Overlay) {
        let manifest = overlay.manifest
        guard manifest.setTime else {
            overlay.values["clock"] = "# set_time: false: the clock is left as Xen gives it."
            return
        }
        let program = Overlay.programFolder + "/liteqube-clock"
        overlay.values["clock"] = "(journalctl -f -n 0 -o cat -u tor@default.service | \(program)) </dev/null >/dev/null 2>&1 &"
        overlay.values["time_tor_servers"] = manifest.timeTorServers.joined(separator: " ")
        overlay.values["time_clearnet_servers"] = manifest.timeClearnetServers.joined(separator: " ")
        overlay.script(program)
    }

    /// Tor's state per network (docs/split-services.md, "Tor per-network state"): core-net names the
    /// network that came up, or the one that is up when core-tor asks; core-tor saves Tor's state for
    /// the network before and restores the new one's (`lq-torsetap`), and saves it again when Tor stops.
    static func torNetworkState(_ overlay: inout Overlay) {
        let bin = Overlay.programFolder
        overlay.script(bin + "/liteqube-tell-tor")
        overlay.script(bin + "/liteqube-tor-monitor")
        overlay.script("/etc/qubes-rpc/liteqube.WifiRequestAP")
        overlay.script("/etc/qubes-rpc/liteqube.TorSetAP")
        overlay.file("/etc/systemd/system/liteqube-tor-state.service")
    }

    static func policy(_ policy: inout PolicyBuilder) {
        let manifest = policy.manifest
        if manifest.effectiveFirewall == .linux {
            policy.notify([.fwNet, .fwTor])
            policy.display([.fwNet, .fwTor])
        }
        if manifest.disposableNetVM { policy.allow("liteqube.SplitFile", from: .net, to: .keys) }
        policy.notify([.net, .tor, .update])
        policy.display([.net, .tor, .update])
        policy.allow("liteqube.SignalWifi", from: [.net], to: "@adminvm")
        policy.allow("liteqube.SignalTor", from: [.tor], to: "@adminvm")
        if manifest.setTime { policy.allow("liteqube.SignalTime", from: [.tor], to: "@adminvm") }
        policy.allow("liteqube.TorSetAP", from: .net, to: .tor)
        policy.allow("liteqube.WifiRequestAP", from: .tor, to: .net)
        policy.rule("qubes.UpdatesProxy", "@type:TemplateVM", "@default", "allow target=\(manifest.name(.update))")
        policy.rule("qubes.UpdatesProxy", "@anyvm", "@anyvm", "deny")
    }
}

extension Component {
    public static let network = Component(id: "network") { network in
        let low = { @Sendable (manifest: Manifest) in manifest.profile == .lowMemory }
        network.roles = [
            RoleSpec(.net, name: "core-net", presence: .alwaysOn, inServiceTotal: true, replaces: "sys-net") { low($0) ? 192 : 240 },
            RoleSpec(.tor, name: "core-tor", presence: .onDemand, inServiceTotal: true, replaces: "sys-whonix") { low($0) ? 144 : 176 },
            RoleSpec(.update, name: "core-update", presence: .transient, memory: 4096),
            RoleSpec(.fwNet, name: "fw-net", presence: .alwaysOn, inServiceTotal: true, replaces: "sys-firewall", memory: Network.firewallMemory),
            RoleSpec(.fwTor, name: "fw-tor", presence: .onDemand, memory: Network.firewallMemory),
            RoleSpec(.fwBase, name: "fw-base", presence: .transient, memory: 64),
            RoleSpec(.fwDvm, name: "fw-dvm", presence: .transient, memory: 64),
        ]
        network.settings = [
            Network.firewall.erased, Network.disposableNetVM.erased, Network.networks.erased, Network.setTime.erased,
            Network.stableMAC.erased, Network.onionUpdates.erased, Network.wiredOnly.erased,
            Network.timeTorServers.erased, Network.timeClearnetServers.erased, Network.firmware.erased, Network.idleTime.erased,
        ]
        network.qubes = Network.qubes
        network.packages = { manifest in
            let networkManager =
                manifest.wiredOnly ? [] : manifest.effectiveFirmware + ["network-manager", "qubes-core-agent-network-manager"]
            return (networkManager + ["htpdate", "qubes-core-agent-dom0-updates", "qubes-core-agent-networking", "tor"]).sorted()
        }
        network.system = Network.system
        network.settle = Network.settle
        network.trees = Network.trees
        network.keysEntries = Network.keysEntries
        network.policy = Network.policy
        network.dom0Services = { manifest in
            [
                Dom0Service(name: "liteqube.SignalWifi", urgency: "normal", milliseconds: 3000, icon: "network-wireless", text: "network/dom0/text/wifi"),
                Dom0Service(name: "liteqube.SignalTor", urgency: "normal", milliseconds: 3000, icon: "network-vpn", text: "network/dom0/text/tor"),
            ] + (manifest.setTime
                ? [Dom0Service(name: "liteqube.SignalTime", urgency: "normal", milliseconds: 5000, icon: "preferences-system-time", text: "network/dom0/text/time")]
                : [])
        }
        network.sudoCommands = { _ in [Overlay.programFolder + "/lq-torsetap set *"] }
    }
}
