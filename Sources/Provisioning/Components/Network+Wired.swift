extension Network {
    /// A wired-only core-net (docs/liteqube.md, "Wired network qube"): systemd-networkd takes DHCP on the
    /// Ethernet cards, a path unit follows its leases into `/run/resolv.conf` and the agent's DNS
    /// forwarding, and core-tor is told the network `wired` is up; no NetworkManager, no saved networks.
    static func wired(_ overlay: inout Overlay, tree net: String) {
        let bin = Overlay.programFolder
        overlay.directory("/etc/systemd/network")
        overlay.file("/etc/systemd/network/80-liteqube-wired.network")
        overlay.file("/etc/systemd/system/liteqube-wired-dns.path")
        overlay.file("/etc/systemd/system/liteqube-wired-dns.service")
        overlay.script(bin + "/liteqube-wired-dns")
        overlay.file(net + "/config/rc.local", content: overlay.text("/fragments/wired-rc.local"), mode: 0o755)
    }
}
