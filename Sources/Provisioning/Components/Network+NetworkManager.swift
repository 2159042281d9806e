// NetworkManager's parts of core-net (docs/liteqube.md, "Saved networks", "MAC addresses"); the
// wired-only qube has none of them (Network+Wired.swift).
extension Network {
    /// core-net with NetworkManager: an AppVM's state in a bind-dir, the dispatcher's reports, MACs and
    /// saved networks; its rc.local.
    static func networkManager(_ overlay: inout Overlay, tree net: String, whitelist netList: String) {
        if !overlay.manifest.disposableNetVM {
            // An AppVM network qube keeps NetworkManager's state (docs/liteqube.md, "Saved networks").
            overlay.directory(net + "/config/qubes-bind-dirs.d")
            overlay.file(net + "/config/qubes-bind-dirs.d/50_liteqube.conf")
            overlay.directories(netList, "bind-dirs/var/lib/NetworkManager", mode: 0o700)
            overlay.file(netList + "/bind-dirs/var/lib/NetworkManager/.any_file", content: "")
            overlay.file(netList + "/bind-dirs/var/lib/NetworkManager/.any_dir", content: "")
        }
        overlay.directory("/etc/NetworkManager")
        overlay.directory("/etc/NetworkManager/dispatcher.d")
        overlay.script("/etc/NetworkManager/dispatcher.d/90-liteqube-tor")
        overlay.script("/etc/NetworkManager/dispatcher.d/80-liteqube-signal")
        overlay.script("/etc/qubes-rpc/liteqube.WifiSetState")
        overlay.script(Overlay.programFolder + "/liteqube-wifi-signal")
        overlay.file("/etc/systemd/system/liteqube-wifi-signal.service")
        macAddresses(&overlay)
        overlay.script(net + "/config/rc.local")
        savedNetworks(&overlay, tree: net, whitelist: netList)
    }

    /// Stable random MACs per network (docs/liteqube.md, "MAC addresses"): NetworkManager's setting, and
    /// for a disposable core-net its `secret_key` as a link to where core-net's rc.local (laid out
    /// after this) fetches it from core-keys; the pin goes with the saved networks' pins.
    static func macAddresses(_ overlay: inout Overlay) {
        guard overlay.manifest.stableMAC else {
            overlay.values["mac_key"] = "# stable_mac: false: NetworkManager keeps its own MAC settings."
            return
        }
        overlay.directory("/etc/NetworkManager/conf.d")
        overlay.file("/etc/NetworkManager/conf.d/80-liteqube-mac.conf")
        let name = MACSecretKey.servedName
        guard MACSecretKey.wanted(overlay.manifest) else {
            overlay.values["mac_key"] = "# An AppVM network qube keeps its own secret_key in /var/lib/NetworkManager."
            return
        }
        overlay.values["mac_key"] = overlay.render("{{bin}}/lq-splitfile get --from {{keys}} --output /run/liteqube/\(name) \(name)")
        overlay.directory("/var/lib/NetworkManager")
        overlay.link("/var/lib/NetworkManager/" + name, "/run/liteqube/" + name)
    }

    /// The files core-keys serves core-net: the connections with secrets and the MAC key, by served name.
    static func servedFiles(networks: [NetworkConnection], macKey: MACSecretKey?) -> [(name: String, content: String, pin: String)] {
        networks.filter(\.hasSecret).map { ($0.servedName, $0.content, $0.pin) }
            + (macKey.map { [(MACSecretKey.servedName, $0.content, $0.pin)] } ?? [])
    }

    /// Saved networks (docs/liteqube.md, "Saved networks"): plain ones in core-net's tree, those with
    /// secrets as links to where core-net's rc.local fetches them from core-keys, pinned in the template;
    /// in the folder the Qubes agent links `/etc/NetworkManager/system-connections` to.
    static func savedNetworks(_ overlay: inout Overlay, tree: String, whitelist netList: String) {
        let connections = "config/NM-system-connections"
        overlay.directory(tree + "/" + connections, mode: 0o700)
        let folder = overlay.render(tree + "/" + connections)
        for network in overlay.networks {
            let path = folder + "/" + network.name
            if network.hasSecret {
                overlay.entry(TemplateEntry(path: path, kind: .symlink(target: "/run/liteqube/" + network.servedName), mode: 0o777))
            } else {
                overlay.entry(TemplateEntry(path: path, kind: .file(network.content), mode: 0o600))
            }
        }
        let served = servedFiles(networks: overlay.networks, macKey: overlay.macKey)
        let pins = overlay.render("\(Overlay.protect)/checksum.{{keys}}/home/user/{{net}}")
        if !served.isEmpty { overlay.directory(pins, owner: "user", mode: 0o700) }
        for file in served {
            overlay.entry(TemplateEntry(path: pins + "/" + file.name, kind: .file(file.pin), owner: "user", mode: 0o600))
        }
        // Networks added at runtime survive the boot check.
        overlay.directory(netList + "/config")
        overlay.directory(netList + "/" + connections, mode: 0o700)
        overlay.file(netList + "/" + connections + "/.any_file", content: "")
    }

    /// What the keys qube holds for the network qube: the connections with
    /// secrets and the MAC key, served by `lq-splitfile` from `/home/user/<network qube>/`.
    @Sendable static func keysEntries(_ manifest: Manifest, networks: [NetworkConnection], macKey: MACSecretKey?) -> [TemplateEntry] {
        let served = servedFiles(networks: networks, macKey: macKey)
        guard !served.isEmpty else { return [] }
        let folder = "/home/user/" + manifest.name(.net)
        return [TemplateEntry(path: folder, kind: .directory, owner: "user", mode: 0o700)]
            + served.map { TemplateEntry(path: folder + "/" + $0.name, kind: .file($0.content), owner: "user", mode: 0o600) }
    }
}
