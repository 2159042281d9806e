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

    static func trees(_ overlay: inout Overlay) {
        let manifest = overlay.manifest
        let protect = Overlay.protect
        overlay.values["resolv_conf"] = overlay.fragment("/fragments/resolv-conf")
        overlay.link("/etc/resolv.conf", "/run/resolv.conf")

        let net = overlay.qubeTemplate(.net, rcLocal: false)
        overlay.file(net + "/config/suspend-module-blacklist")
        overlay.script(net + "/config/rc.local")
        let netList = "\(protect)/whitelist.{{net}}"
        overlay.directory(netList)
        if !manifest.disposableNetVM {
            // An AppVM network qube keeps NetworkManager's state (docs/liteqube.md, "Saved networks").
            overlay.directory(net + "/config/qubes-bind-dirs.d")
            overlay.file(net + "/config/qubes-bind-dirs.d/50_liteqube.conf")
            overlay.directories(netList, "bind-dirs/var/lib/NetworkManager", mode: 0o700)
            overlay.file(netList + "/bind-dirs/var/lib/NetworkManager/.any_file", content: "")
            overlay.file(netList + "/bind-dirs/var/lib/NetworkManager/.any_dir", content: "")
        }
        torNetworkState(&overlay)
        savedNetworks(&overlay, tree: net, whitelist: netList)

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

    /// Saved networks (docs/liteqube.md, "Saved networks"): plain ones in core-net's tree, those with
    /// secrets as links to where core-net's rc.local fetches them from core-keys, pinned in the template;
    /// in the folder the Qubes agent links `/etc/NetworkManager/system-connections` to.
    static func savedNetworks(_ overlay: inout Overlay, tree: String, whitelist netList: String) {
        let connections = "config/NM-system-connections"
        overlay.directory(tree + "/" + connections, mode: 0o700)
        let pins = overlay.render("\(Overlay.protect)/checksum.{{keys}}/home/user/{{net}}")
        if overlay.networks.contains(where: \.hasSecret) { overlay.directory(pins, owner: "user", mode: 0o700) }
        let folder = overlay.render(tree + "/" + connections)
        for network in overlay.networks {
            let path = folder + "/" + network.name
            if network.hasSecret {
                overlay.entry(TemplateEntry(path: path, kind: .symlink(target: "/run/liteqube/" + network.servedName), mode: 0o777))
                overlay.entry(TemplateEntry(path: pins + "/" + network.servedName, kind: .file(network.pin), owner: "user", mode: 0o600))
            } else {
                overlay.entry(TemplateEntry(path: path, kind: .file(network.content), mode: 0o600))
            }
        }
        // Networks added at runtime survive the boot check.
        overlay.directory(netList + "/config")
        overlay.directory(netList + "/" + connections, mode: 0o700)
        overlay.file(netList + "/" + connections + "/.any_file", content: "")
    }

    /// Tor's state per network (docs/split-services.md, "Tor per-network state"): core-net names the
    /// network that came up, or the one that is up when core-tor asks; core-tor saves Tor's state for
    /// the network before and restores the new one's (`lq-torsetap`), and saves it again when Tor stops.
    static func torNetworkState(_ overlay: inout Overlay) {
        let bin = Overlay.programFolder
        overlay.script(bin + "/liteqube-tell-tor")
        overlay.directory("/etc/NetworkManager")
        overlay.directory("/etc/NetworkManager/dispatcher.d")
        overlay.script("/etc/NetworkManager/dispatcher.d/90-liteqube-tor")
        overlay.script("/etc/NetworkManager/dispatcher.d/80-liteqube-signal")
        overlay.script(bin + "/liteqube-tor-monitor")
        overlay.script("/etc/qubes-rpc/liteqube.WifiRequestAP")
        overlay.script("/etc/qubes-rpc/liteqube.TorSetAP")
        overlay.file("/etc/systemd/system/liteqube-tor-state.service")
    }

    /// What the keys qube holds for the network qube: the connections with
    /// secrets, served by `lq-splitfile` from `/home/user/<network qube>/`.
    @Sendable static func keysEntries(_ manifest: Manifest, networks: [NetworkConnection]) -> [TemplateEntry] {
        let secret = networks.filter(\.hasSecret)
        guard !secret.isEmpty else { return [] }
        let folder = "/home/user/" + manifest.name(.net)
        return [TemplateEntry(path: folder, kind: .directory, owner: "user", mode: 0o700)]
            + secret.map { TemplateEntry(path: folder + "/" + $0.servedName, kind: .file($0.content), owner: "user", mode: 0o600) }
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
            Network.timeTorServers.erased, Network.timeClearnetServers.erased, Network.firmware.erased, Network.idleTime.erased,
        ]
        network.qubes = Network.qubes
        network.packages = { manifest in
            manifest.effectiveFirmware + [
                "htpdate", "network-manager", "qubes-core-agent-dom0-updates", "qubes-core-agent-network-manager",
                "qubes-core-agent-networking", "tor",
            ]
        }
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

/// The clock's servers (docs/liteqube.md, "The clock"): host names, optionally with `http://` or
/// `https://` (htpdate does not check certificates, so a clock far off still gets an answer).
enum TimeServer {
    /// htpdate takes at most 16 servers.
    static let limit = 15
    /// The Qubes, DuckDuckGo and Facebook onion services, and one more the original lists.
    static let onion = [
        "qubesosfasa4zl44o4tws22di6kepyzfeqv3tg4e3ztknltfxqrymdad.onion", "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion",
        "facebookwkhpilnemxj7asaniu7vnjjbiltxjqhye3mhbshg7kx5tfyd.onion", "2s4yqjx5ul6okpp3f2gaunr2syex5jgbfpfvhxxbbjwnrsvbk5v3qbid.onion",
    ]
    static let clearnet = ["https://www.debian.org", "https://www.qubes-os.org", "https://www.torproject.org"]

    /// What is wrong with a server for the onion or the clearnet list, or `nil`.
    static func problem(_ server: String, onion: Bool) -> String? {
        var host = Substring(server)
        for scheme in ["http://", "https://"] where host.hasPrefix(scheme) { host = host.dropFirst(scheme.count) }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        let isOnion = labels.count == 2 && labels[1] == "onion"
        if onion {
            let base32 = labels[0].allSatisfy { ("a"..."z").contains($0) || ("2"..."7").contains($0) }
            return isOnion && labels[0].count == 56 && base32 ? nil : "is not a v3 onion address (56 letters a-z and digits 2-7, then .onion)"
        }
        if labels.last == "onion" { return "is an onion address, which needs Tor (time_tor_servers)" }
        let valid = host.count <= 253 && labels.count >= 2 && labels.allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
        return valid ? nil : "is not a host name (letters, digits and hyphens, in dotted labels)"
    }
}
