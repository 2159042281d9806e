/// A step inside the template, in the order it must run.
enum TemplateStep: Sendable, Hashable {
    case entry(TemplateEntry)
    case packages([String])
}

/// Builds the ordered list of template entries.
private struct Overlay {
    var steps: [TemplateStep] = []

    mutating func directory(_ path: String, owner: String = "root", mode: Int = 0o755) {
        steps.append(.entry(TemplateEntry(path: path, kind: .directory, owner: owner, mode: mode)))
    }

    mutating func file(_ path: String, _ content: String, owner: String = "root", mode: Int = 0o644) {
        steps.append(.entry(TemplateEntry(path: path, kind: .file(content), owner: owner, mode: mode)))
    }

    /// A root-owned executable script.
    mutating func script(_ path: String, _ content: String) { file(path, content, mode: 0o755) }

    /// `root` + each folder of `relative` in turn; the last gets `owner` and `mode`.
    mutating func directories(_ root: String, _ relative: String, owner: String = "root", mode: Int = 0o755) {
        var path = root
        let parts = relative.split(separator: "/")
        for (index, part) in parts.enumerated() {
            path += "/" + part
            let last = index == parts.count - 1
            directory(path, owner: last ? owner : "root", mode: last ? mode : 0o755)
        }
    }

    mutating func link(_ path: String, _ target: String) {
        steps.append(.entry(TemplateEntry(path: path, kind: .symlink(target: target), mode: 0o777)))
    }
}

extension Catalog {
    /// Where Liteqube's own programs live in the template.
    static let programFolder = "/usr/lib/liteqube"

    /// Units whose enablement links the dpkg hook keeps (spec §2.1 post-install,
    /// plus the Qubes 4.3 boot units a debian-core qube cannot start without).
    static let keptUnits = [
        "getty@tty1.service", "liteqube-vm-template.service", "qubes-db.service", "qubes-early-vm-config.service",
        "qubes-misc-post.service", "qubes-mount-dirs.service", "qubes-qrexec-agent.service", "qubes-sync-time.timer",
        "qubes-sysinit.service", "systemd-pstore.service", "xendriverdomain.service",
    ]

    /// Units the dpkg hook masks (spec §2.1, with the names the original misspelt corrected).
    static let maskedUnits = [
        "cron.service", "dev-xvdc1.swap", "htpdate.service", "qubes-meminfo-writer.service", "remote-fs.target",
        "systemd-fsck-root.service", "systemd-journal-flush.service", "systemd-rfkill.service", "systemd-rfkill.socket",
        "systemd-timesyncd.service", "systemd-tmpfiles-clean.timer", "systemd-update-utmp-runlevel.service",
        "systemd-update-utmp.service",
    ]

    /// Everything the installed components put into debian-core, in order:
    /// the dpkg hook first (so it also trims what the packages enable), then
    /// the packages, then files that need the packages' users and folders.
    static func templateSteps(
        _ manifest: Manifest, binaries: TemplateBinaries, networks: [NetworkConnection] = []
    ) -> [TemplateStep] {
        var overlay = Overlay()
        baseSystem(manifest, binaries: binaries, into: &overlay)
        overlay.steps.append(.packages(templatePackages(manifest)))
        baseTrees(manifest, into: &overlay)
        if manifest.components.contains(.network) { network(manifest, networks: networks, into: &overlay) }
        if manifest.components.contains(.usb) { usb(manifest, into: &overlay) }
        return overlay.steps
    }

    /// What the keys qube holds for the network qube: the connections with
    /// secrets, served by `lq-splitfile` from `/home/user/<network qube>/`.
    static func keysEntries(_ manifest: Manifest, networks: [NetworkConnection]) -> [TemplateEntry] {
        let secret = networks.filter(\.hasSecret)
        guard manifest.components.contains(.network), !secret.isEmpty else { return [] }
        let folder = "/home/user/" + manifest.name("net")
        return [TemplateEntry(path: folder, kind: .directory, owner: "user", mode: 0o700)]
            + secret.map { TemplateEntry(path: folder + "/" + $0.servedName, kind: .file($0.content), owner: "user", mode: 0o600) }
    }

    /// Packages the installed components need in debian-core. The template
    /// never gets passwordless root: `user` may run only what sudoers lists.
    static func templatePackages(_ manifest: Manifest) -> [String] {
        var packages = ["ca-certificates", "fonts-terminus-otb", "netcat-openbsd", "openssh-client", "stterm", "x11-utils"]
        if manifest.components.contains(.network) {
            packages += [
                "firmware-iwlwifi", "htpdate", "network-manager", "qubes-core-agent-dom0-updates", "qubes-core-agent-network-manager",
                "qubes-core-agent-networking", "tor",
            ]
        }
        if manifest.components.contains(.usb) {
            packages += ["qubes-usb-proxy", "usbguard"] + (manifest.usbInputDevices ? ["qubes-input-proxy-sender"] : [])
        }
        return packages
    }

    /// The template's own system files: programs, units, qrexec services,
    /// the dpkg hook, apt, sudoers, fstab.
    private static func baseSystem(_ manifest: Manifest, binaries: TemplateBinaries, into overlay: inout Overlay) {
        let bin = programFolder
        let keys = manifest.name("keys")
        overlay.directory(bin)
        for name in TemplateBinaries.names {
            guard let binary = binaries.files[name] else { continue }
            overlay.steps.append(.entry(TemplateEntry(
                path: bin + "/" + name, kind: .binary(source: binary.source, sha256: binary.sha256), mode: 0o755)))
            for tool in TemplateBinaries.tools { overlay.link(bin + "/" + tool, name) }
        }
        overlay.script(bin + "/post-install", """
            #!/bin/sh
            # Liteqube: after every dpkg run, services start per qube (from its
            # /rw/config/rc.local), never from the template's enablement links.
            keep="\(keptUnits.joined(separator: " "))"
            find /etc/systemd/system -mindepth 2 -type l | while IFS= read -r link; do
                case " $keep " in
                    *" ${link##*/} "*) ;;
                    *) rm -f -- "$link" ;;
                esac
            done
            systemctl mask \(maskedUnits.joined(separator: " ")) >/dev/null 2>&1
            systemctl list-unit-files --type=timer --no-legend 2>/dev/null | while read -r timer state rest; do
                [ "$timer" = qubes-sync-time.timer ] && continue
                [ "$state" = masked ] && continue
                systemctl stop "$timer" >/dev/null 2>&1
                systemctl mask "$timer" >/dev/null 2>&1
            done
            rm -f /usr/lib/NetworkManager/conf.d/30_qubes.conf
            systemctl daemon-reload >/dev/null 2>&1
            fstrim / >/dev/null 2>&1
            exit 0

            """)
        overlay.file("/etc/apt/apt.conf.d/80liteqube", """
            // Liteqube: trim services after every package operation; fewer packages.
            DPkg::Post-Invoke { "\(bin)/post-install"; };
            APT::Install-Recommends "false";
            APT::Install-Suggests "false";
            Acquire::Retries "5";
            Acquire::http::AllowRedirect "false";
            Acquire::BlockDotOnion "false";

            """)
        overlay.file("/etc/sudoers.d/liteqube", """
            # Liteqube: the only commands user may run as root.
            Defaults timestamp_timeout=0
            Defaults env_reset
            user ALL=(root) NOPASSWD: /usr/bin/systemctl poweroff, /usr/sbin/shutdown\(
                manifest.components.contains(.network) ? ", \(bin)/lq-torsetap set *" : "")

            """, mode: 0o440)
        overlay.file("/etc/fstab", """
            # Liteqube: read-only root, memory-backed temporary folders, no swap.
            /dev/mapper/dmroot /          ext4  ro,noatime,discard,commit=300       1 1
            /dev/xvdb          /rw        auto  noauto,defaults,discard,nosuid,nodev 1 2
            /rw/home           /home      none  noauto,bind,defaults,nosuid,nodev    0 0
            /rw/usrlocal       /usr/local none  noauto,bind,defaults                 0 0
            tmpfs              /tmp       tmpfs noexec,nosuid,nodev,size=10%         0 0
            tmpfs              /var/tmp   tmpfs noexec,nosuid,nodev,size=10%         0 0
            tmpfs              /dev/shm   tmpfs noexec,nosuid,nodev,size=10M         0 0

            """)
        overlay.file("/etc/systemd/system/liteqube-vm-template.service", """
            [Unit]
            Description=Liteqube: deploy and check this qube's private volume before it is mounted
            DefaultDependencies=no
            After=qubes-sysinit.service local-fs-pre.target
            Before=qubes-mount-dirs.service

            [Service]
            Type=oneshot
            RemainAfterExit=yes
            ExecStart=\(bin)/lq-protect --device /dev/xvdb --rules /etc/protect

            [Install]
            WantedBy=sysinit.target

            """)
        overlay.directory("/etc/systemd/system/sysinit.target.wants")
        overlay.link("/etc/systemd/system/sysinit.target.wants/liteqube-vm-template.service", "/etc/systemd/system/liteqube-vm-template.service")
        overlay.file("/etc/systemd/system/liteqube-shutdown-inactive.service", """
            [Unit]
            Description=Liteqube: power off when the last window is gone
            ConditionPathExists=/usr/local/bin/liteqube-shutdown-inactive

            [Service]
            ExecStart=/usr/local/bin/liteqube-shutdown-inactive
            Restart=always

            """)
        // Boot guard findings reach dom0 once qrexec is up.
        overlay.script("/etc/rc.local", """
            #!/bin/sh
            if [ -d /rw/QUARANTINE ]; then
                sleep 3
                qrexec-client-vm dom0 liteqube.Error+Files_quarantined_during_boot </dev/null
            fi
            exit 0

            """)
        overlay.directory("/etc/qubes-rpc")
        overlay.script("/etc/qubes-rpc/liteqube.SplitFile", """
            #!/bin/sh
            # Liteqube: hand the calling qube one of its files from \(keys).
            exec \(bin)/lq-splitfile serve

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitPassword", """
            #!/bin/sh
            # Liteqube: hand the calling qube one of its passwords from \(keys).
            exec \(bin)/lq-splitpassword serve

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitPasswordSave", """
            #!/bin/sh
            # Liteqube, in \(keys), for dom0 only: store a password (qube, token, password lines on stdin).
            exec \(bin)/lq-splitpassword save

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitFileSave", """
            #!/bin/sh
            # Liteqube, in \(keys), for dom0 only: store a file for a qube (qube and file name lines, then the content, on stdin).
            exec \(bin)/lq-splitfile save

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitFileChecksum", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("core")), for dom0 only: pin a stored file (qube, file name, sha256, sha512 lines).
            exec \(bin)/lq-splitfile pin --keys-qube \(keys)

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitPasswordChecksum", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("core")), for dom0 only: pin a password store (qube, sha256, sha512 lines).
            exec \(bin)/lq-splitpassword pin --keys-qube \(keys)

            """)
    }

    /// The `/etc/protect` trees of Base (spec §2.1).
    private static func baseTrees(_ manifest: Manifest, into overlay: inout Overlay) {
        let protect = "/etc/protect"
        overlay.directory(protect, mode: 0o750)
        overlay.file("\(protect)/settings.\(manifest.name("core"))", "OBSCURE=No\n")
        let all = "\(protect)/template.ALL"
        overlay.directory(all)
        overlay.directory(all + "/config")
        overlay.script(all + "/config/rc.local", "#!/bin/sh\nexit 0\n")
        overlay.script(all + "/config/qubes-firewall-user-script", "#!/bin/sh\nexit 0\n")
        overlay.file(all + "/config/suspend-module-blacklist", "")
        overlay.directory(all + "/home")
        overlay.directory(all + "/home/user", owner: "user", mode: 0o750)
        overlay.file(all + "/home/user/.bashrc", """
            # Liteqube: no history, plain locale.
            unset HISTFILE
            export LANG=C.UTF-8
            PS1='\\u@\\h:\\w\\$ '

            """, owner: "user")
        overlay.file(all + "/home/user/.profile", "[ -n \"$BASH_VERSION\" ] && [ -f \"$HOME/.bashrc\" ] && . \"$HOME/.bashrc\"\n", owner: "user")
        overlay.directory(all + "/home/user/.config", owner: "user")
        overlay.file(all + "/home/user/.config/user-dirs.dirs", ["DESKTOP", "DOWNLOAD", "TEMPLATES", "PUBLICSHARE", "DOCUMENTS", "MUSIC", "PICTURES", "VIDEOS"]
            .map { "XDG_\($0)_DIR=\"$HOME/\"\n" }.joined(), owner: "user")
        overlay.file(all + "/home/user/.config/user-dirs.locale", "C\n", owner: "user")
        overlay.directory(all + "/home/user/.config/autostart", owner: "user")
        overlay.link(all + "/home/user/.cache", "/tmp")
        overlay.link(all + "/home/user/.local", "/tmp")
        overlay.link(all + "/home/user/.xsession-errors", "/dev/null")
        overlay.directories(all, "bind-dirs/var/spool/cron/crontabs")
        overlay.directory(all + "/lost+found", mode: 0o700)
        overlay.directory(all + "/usrlocal", mode: 0o775)

        let core = "\(protect)/template.\(manifest.name("core"))"
        overlay.directory(core)
        overlay.directory(core + "/config")
        overlay.script(core + "/config/rc.local", """
            #!/bin/sh
            # Liteqube: the template itself may change its root; its services stay off.
            mount -o remount,rw /
            rm -f /usr/lib/NetworkManager/conf.d/30_qubes.conf
            fstrim / ; fstrim /rw
            : > /var/log/wtmp
            systemctl start qubes-updates-proxy-forwarder.socket

            """)

        let dvm = "\(protect)/template.\(manifest.name("dvm"))"
        overlay.directory(dvm)
        overlay.directory(dvm + "/config")
        overlay.script(dvm + "/config/rc.local", """
            #!/bin/sh
            # Keep \(manifest.name("dvm")) empty: every disposable starts from a blank private volume.
            for entry in /rw/QUARANTINE /rw/home /rw/config; do
                chattr -R -i "$entry" 2>/dev/null
                rm -rf "$entry"
            done
            sync
            poweroff

            """)

        let keys = "\(protect)/template.\(manifest.name("keys"))"
        overlay.directory(keys)
        overlay.directory(keys + "/config")
        overlay.script(keys + "/config/rc.local", """
            #!/bin/sh
            # The keys qube stays up two minutes after the last request.
            fstrim /rw
            shutdown +2

            """)
        let pins = "\(protect)/checksum.\(manifest.name("keys"))"
        overlay.directory(pins, mode: 0o700)
        overlay.directory(pins + "/home")
        overlay.directory(pins + "/home/user", owner: "user", mode: 0o700)
        overlay.directory(pins + "/home/user/.ssh", owner: "user", mode: 0o700)

        splitDisplay(manifest, into: &overlay)
        let xorg = "\(protect)/template.\(manifest.name("xorg"))"
        overlay.directory(xorg)
        overlay.directory(xorg + "/config")
        overlay.script(xorg + "/config/rc.local", """
            #!/bin/sh
            # The display qube: runs while a client window is open.
            systemctl start qubes-gui-agent
            systemctl start liteqube-shutdown-inactive

            """)
        overlay.directory(xorg + "/usrlocal", mode: 0o775)
        overlay.directory(xorg + "/usrlocal/bin")
        overlay.script(xorg + "/usrlocal/bin/liteqube-shutdown-inactive", """
            #!/bin/sh
            # Power off when no client window appears within 30 s, or when the last one closes.
            export DISPLAY=:0
            windows() { xwininfo -root -children 2>/dev/null | sed -n 's/^ *\\([0-9]*\\) child.*/\\1/p'; }
            waited=0
            while [ "$(windows)" != 2 ]; do
                sleep 1
                waited=$((waited + 1))
                [ "$waited" -ge 30 ] && exec poweroff
            done
            while [ "$(windows)" != 1 ]; do sleep 10; done
            exec poweroff

            """)
    }

    /// Terminals in service qubes (spec §4.1 Xterm, SplitXorg): a qube without its own X server gets
    /// a display socket whose connections go to the display qube's X server over qrexec, one at a time
    /// and each asked for; `lq xterm` runs `liteqube-xterm` there as root with the command as argv.
    private static func splitDisplay(_ manifest: Manifest, into overlay: inout Overlay) {
        let display = manifest.name("xorg")
        overlay.file("/etc/systemd/system/liteqube-split-xorg.socket", """
            [Unit]
            Description=Liteqube: this qube's X display, shown by \(display) (liteqube.SplitXorg)

            [Socket]
            ListenStream=/tmp/.X11-unix/X0
            SocketUser=user
            SocketMode=0600
            DirectoryMode=01777
            Accept=yes
            MaxConnections=4

            """)
        overlay.file("/etc/systemd/system/liteqube-split-xorg@.service", """
            [Unit]
            Description=Liteqube: one X connection to \(display)

            [Service]
            User=user
            StandardInput=socket
            StandardOutput=socket
            StandardError=journal
            ExecStart=/usr/bin/qrexec-client-vm \(display) liteqube.SplitXorg

            """)
        overlay.script("/etc/qubes-rpc/liteqube.SplitXorg", """
            #!/bin/sh
            # Liteqube, in \(display): one X connection from a service qube to this qube's display.
            # Only this user's local connections are let in (the original turned access control off: xhost +).
            command -v xhost >/dev/null && DISPLAY=:0 xhost "+SI:localuser:$(id -un)" >/dev/null 2>&1
            exec nc -U /tmp/.X11-unix/X0

            """)
        overlay.script(programFolder + "/liteqube-xterm", """
            #!/bin/sh
            # Liteqube: a terminal titled $1 running the rest of the arguments (a login shell when none),
            # on this qube's display or, without one, on \(display)'s. The command is argv, never shell text.
            title=$1
            shift
            [ -S /tmp/.X11-unix/X0 ] || systemctl start liteqube-split-xorg.socket
            export DISPLAY=:0
            [ $# -gt 0 ] || set -- /bin/bash -l
            exec stterm -c Stterm -T "$title" -f terminus-12 -e "$@"

            """)
    }

    /// resolv.conf from the Qubes name servers (the root is read-only: /etc/resolv.conf points here).
    private static let writeResolvConf = """
        for server in $(qubesdb-read /qubes-primary-dns 2>/dev/null || echo 10.139.1.1) \\
                      $(qubesdb-read /qubes-secondary-dns 2>/dev/null || echo 10.139.1.2); do
            echo "nameserver $server"
        done > /run/resolv.conf
        """

    /// Network (spec §2.2): core-net, the firewalls, core-tor, core-update.
    private static func network(_ manifest: Manifest, networks: [NetworkConnection], into overlay: inout Overlay) {
        let protect = "/etc/protect"
        let keys = manifest.name("keys")
        overlay.link("/etc/resolv.conf", "/run/resolv.conf")

        let net = "\(protect)/template.\(manifest.name("net"))"
        overlay.directory(net)
        overlay.directory(net + "/config")
        overlay.file(net + "/config/suspend-module-blacklist", "iwlmvm\niwlwifi\n")
        overlay.directory(net + "/config/qubes-bind-dirs.d")
        overlay.file(net + "/config/qubes-bind-dirs.d/50_liteqube.conf", manifest.disposableNetVM
            ? "binds+=( '/etc/NetworkManager/system-connections' )\n"
            : "binds+=( '/etc/NetworkManager/system-connections' '/var/lib/NetworkManager' )\n")
        overlay.script(net + "/config/rc.local", """
            #!/bin/sh
            # Liteqube network qube: connections that hold secrets come from \(keys) at every boot.
            ln -sf /run/NetworkManager/resolv.conf /run/resolv.conf
            install -d -m 0700 /run/liteqube
            for attempt in $(seq 60); do [ -S /var/run/qubes/qrexec-agent ] && break; sleep 0.5; done
            for link in /etc/NetworkManager/system-connections/*; do
                target=$(readlink "$link") || continue
                case "$target" in /run/liteqube/*) ;; *) continue ;; esac
                \(programFolder)/lq-splitfile get --from \(keys) --output "$target" "${target#/run/liteqube/}"
            done
            touch /var/run/qubes-service/network-manager /var/run/qubes-service/qubes-network
            systemctl start qubes-iptables qubes-network NetworkManager

            """)
        torNetworkState(manifest, into: &overlay)
        let connections = "bind-dirs/etc/NetworkManager/system-connections"
        overlay.directories(net, connections, mode: 0o700)
        let pins = "\(protect)/checksum.\(keys)/home/user/\(manifest.name("net"))"
        if networks.contains(where: \.hasSecret) { overlay.directory(pins, owner: "user", mode: 0o700) }
        for network in networks {
            let path = "\(net)/\(connections)/\(network.name)"
            if network.hasSecret {
                overlay.link(path, "/run/liteqube/" + network.servedName)
                overlay.file(pins + "/" + network.servedName, network.pin, owner: "user", mode: 0o600)
            } else {
                overlay.file(path, network.content, mode: 0o600)
            }
        }
        // Networks added at runtime survive the boot check.
        let netList = "\(protect)/whitelist.\(manifest.name("net"))"
        overlay.directory(netList)
        overlay.directories(netList, connections, mode: 0o700)
        overlay.file(netList + "/" + connections + "/.any_file", "")

        // The firewalls run qubes-firewall, so per-qube firewall rules hold (the original never started it).
        for role in ["fw-net", "fw-tor"] where manifest.effectiveFirewall == .linux {
            let firewall = "\(protect)/template.\(manifest.name(role))"
            overlay.directory(firewall)
            overlay.directory(firewall + "/config")
            overlay.script(firewall + "/config/rc.local", """
                #!/bin/sh
                # Liteqube firewall qube.
                \(writeResolvConf)
                touch /var/run/qubes-service/qubes-network /var/run/qubes-service/qubes-firewall
                systemctl start qubes-iptables qubes-network qubes-firewall

                """)
        }

        let tor = "\(protect)/template.\(manifest.name("tor"))"
        overlay.directory(tor)
        overlay.directory(tor + "/config")
        overlay.directory(tor + "/config/qubes-bind-dirs.d")
        overlay.file(tor + "/config/qubes-bind-dirs.d/50_liteqube.conf", "binds+=( '/var/lib/tor' )\n")
        overlay.script(tor + "/config/rc.local", """
            #!/bin/sh
            # Liteqube Tor qube: every connection from downstream goes through Tor.
            \(writeResolvConf)
            fstrim /rw
            ip=$(qubesdb-read /qubes-ip)
            case "$ip" in
                *[!0-9.]* | "") echo "liteqube: no usable /qubes-ip" >&2; exit 1 ;;
            esac
            install -d -o debian-tor -g debian-tor -m 02750 /run/tor
            cat > /run/tor/liteqube-ports.conf <<EOF
            SocksPort $ip:9050
            TransPort $ip:9040 IsolateClientAddr IsolateDestPort
            TransPort 127.0.0.1:9040 IsolateClientAddr IsolateDestPort
            DNSPort $ip:5300
            DNSPort 127.0.0.1:5300
            EOF
            systemctl start qubes-iptables
            nft -f /rw/config/liteqube-tor.nft
            # Tor starts once the network qube names its network (liteqube.TorSetAP), with that network's state.
            systemctl start liteqube-tor-state
            setsid \(programFolder)/liteqube-tor-monitor </dev/null >/dev/null 2>&1 &
            qrexec-client-vm \(manifest.name("net")) liteqube.WifiRequestAP </dev/null &
            # The clock qube: set the time over Tor (TLS to well-known sites) once Tor is up.
            (for attempt in $(seq 30); do
                htpdate -l -s https://www.debian.org https://www.torproject.org https://www.qubes-os.org && break
                sleep 60
            done) >/dev/null 2>&1 &

            """)
        overlay.file(tor + "/config/liteqube-tor.nft", """
            #!/usr/sbin/nft -f
            # Liteqube Tor qube: transparent proxy for downstream qubes and for this one.
            table ip liteqube-tor
            delete table ip liteqube-tor
            table ip liteqube-tor {
                chain prerouting {
                    type nat hook prerouting priority dstnat - 10; policy accept;
                    iifname "vif*" udp dport 53 redirect to :5300
                    iifname "vif*" tcp dport 9050 redirect to :9050
                    iifname "vif*" tcp flags & (syn | ack) == syn redirect to :9040
                }
                chain output {
                    type nat hook output priority -110; policy accept;
                    meta skgid "debian-tor" accept
                    udp dport 53 redirect to :5300
                    ip daddr 127.0.0.0/9 accept
                    tcp flags & (syn | ack) == syn redirect to :9040
                }
                chain input {
                    type filter hook input priority filter - 10; policy accept;
                    ct state invalid drop
                    ip frag-off & 0x1fff != 0 drop
                    tcp flags & (fin | syn | rst | psh | ack | urg) == fin | psh | urg drop
                    tcp flags & (fin | syn | rst | psh | ack | urg) == 0x0 drop
                    tcp flags & (syn | fin) == syn | fin drop
                    tcp flags & (syn | rst) == syn | rst drop
                    ip protocol icmp drop
                    iifname "vif*" udp dport 5300 accept
                    iifname "vif*" tcp dport { 9040, 9050 } accept
                    iifname "vif*" drop
                }
                chain forward {
                    type filter hook forward priority filter - 10; policy drop;
                }
            }

            """)
        let torList = "\(protect)/whitelist.\(manifest.name("tor"))"
        overlay.directory(torList)
        overlay.directories(torList, "bind-dirs/var/lib/tor", owner: "debian-tor", mode: 0o700)
        overlay.file(torList + "/bind-dirs/var/lib/tor/.any_file", "")
        overlay.file(torList + "/bind-dirs/var/lib/tor/.any_dir", "")
        overlay.directories(torList, "config/tor", mode: 0o700)
        overlay.file(torList + "/config/tor/.any_file", "")
        overlay.directory(torList + "/config/tor/var-lib", mode: 0o700)
        overlay.file(torList + "/config/tor/var-lib/.any_dir", "")
        overlay.directory("/etc/tor")
        overlay.file("/etc/tor/torrc", """
            # Liteqube: the listening addresses are written at boot by the Tor qube's rc.local.
            DataDirectory /var/lib/tor
            ControlSocket /run/tor/control
            CookieAuthentication 0
            Log notice syslog
            VirtualAddrNetwork 10.192.0.0/10
            AutomapHostsOnResolve 1
            %include /run/tor/liteqube-ports.conf

            """)

        let update = "\(protect)/template.\(manifest.name("update"))"
        overlay.directory(update)
        overlay.directory(update + "/config")
        overlay.script(update + "/config/rc.local", """
            #!/bin/sh
            # Liteqube update qube: downloads land in memory; idle for 5 minutes means done.
            \(writeResolvConf)
            mount -o remount,size=90% /var/tmp
            mkdir -p /var/lib/qubes/dom0-updates
            mount -t tmpfs -o size=90%,nosuid,nodev tmpfs /var/lib/qubes/dom0-updates
            touch /var/run/qubes-service/qubes-firewall /var/run/qubes-service/qubes-updates-proxy
            systemctl start qubes-iptables qubes-firewall qubes-updates-proxy
            /usr/local/bin/liteqube-idle-poweroff &

            """)
        overlay.directory(update + "/usrlocal", mode: 0o775)
        overlay.directory(update + "/usrlocal/bin")
        overlay.script(update + "/usrlocal/bin/liteqube-idle-poweroff", """
            #!/bin/sh
            # Power off after 300 s without traffic received on eth0.
            last=
            idle=0
            while sleep 10; do
                now=$(cat /sys/class/net/eth0/statistics/rx_bytes 2>/dev/null)
                if [ "$now" = "$last" ]; then idle=$((idle + 10)); else idle=0; last=$now; fi
                [ "$idle" -ge 300 ] && exec poweroff
            done

            """)
    }

    /// Tor's state per network (spec §2.2 core-tor, §4.1 TorSetAP): core-net names the network that came
    /// up, or the one that is up when core-tor asks; core-tor saves Tor's state for the network before
    /// and restores the new one's (`lq-torsetap`), and saves it again when Tor stops at shutdown.
    private static func torNetworkState(_ manifest: Manifest, into overlay: inout Overlay) {
        let bin = programFolder
        overlay.script(bin + "/liteqube-tell-tor", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("net")): tell \(manifest.name("tor")) which network is up, as a qrexec argument.
            name=$1
            [ -n "$name" ] || name=$(nmcli -t -f NAME,DEVICE connection show --active | grep -v ':lo$' | head -n 1 | sed 's/:[^:]*$//')
            [ -n "$name" ] || exit 0
            name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9_.+-' '_' | cut -b 1-64)
            case "$name" in [.-]*) name="_${name#?}" ;; esac
            exec qrexec-client-vm \(manifest.name("tor")) "liteqube.TorSetAP+$name" </dev/null >/dev/null 2>&1

            """)
        overlay.directory("/etc/NetworkManager")
        overlay.directory("/etc/NetworkManager/dispatcher.d")
        overlay.script("/etc/NetworkManager/dispatcher.d/90-liteqube-tor", """
            #!/bin/sh
            # Liteqube: a network came up; the Tor qube switches to that network's Tor state.
            [ "$2" = up ] && [ "$1" != lo ] || exit 0
            setsid \(bin)/liteqube-tell-tor "$CONNECTION_ID" &

            """)
        overlay.script("/etc/NetworkManager/dispatcher.d/80-liteqube-signal", """
            #!/bin/sh
            # Liteqube: dom0 hears when a network comes up or goes down (liteqube.SignalWifi).
            [ "$1" != lo ] || exit 0
            case "$2" in
                up) set -- ST-100 "AP-$(printf '%s' "$CONNECTION_ID" | tr -c 'A-Za-z0-9_.+-' '_' | cut -b 1-60)" ;;
                down) set -- ST-0 ;;
                *) exit 0 ;;
            esac
            for report in "$@"; do
                qrexec-client-vm dom0 "liteqube.SignalWifi+$report" </dev/null >/dev/null 2>&1 &
            done

            """)
        overlay.script(bin + "/liteqube-tor-monitor", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("tor")): dom0 hears Tor's bootstrap progress (liteqube.SignalTor): 100 connected, 200 stopped.
            journalctl -f -n 0 -o cat -u tor@default.service | while IFS= read -r line; do
                case "$line" in
                    *"Bootstrapped 100%"*) state=100 ;;
                    *"Bootstrapped "[0-9]*%*) state=$(printf '%s' "${line#*Bootstrapped }" | cut -d% -f1) ;;
                    *"exiting cleanly"*) state=200 ;;
                    *) continue ;;
                esac
                qrexec-client-vm dom0 "liteqube.SignalTor+$state" </dev/null >/dev/null 2>&1
            done

            """)
        overlay.script("/etc/qubes-rpc/liteqube.WifiRequestAP", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("net")): \(manifest.name("tor")) asks which network is up.
            setsid \(bin)/liteqube-tell-tor </dev/null >/dev/null 2>&1 &

            """)
        overlay.script("/etc/qubes-rpc/liteqube.TorSetAP", """
            #!/bin/sh
            # Liteqube, in \(manifest.name("tor")): \(manifest.name("net")) names the network that is up.
            exec sudo -n \(bin)/lq-torsetap set -- "$1"

            """)
        overlay.file("/etc/systemd/system/liteqube-tor-state.service", """
            [Unit]
            Description=Liteqube: save the current network's Tor state once Tor has stopped
            Before=tor@default.service
            RequiresMountsFor=/rw /var/lib/tor

            [Service]
            Type=oneshot
            RemainAfterExit=yes
            ExecStart=/bin/true
            ExecStop=\(bin)/lq-torsetap save

            """)
    }

    /// USB (spec §2.3): usbguard lets mass storage through (and input
    /// devices when asked); everything else is rejected.
    private static func usb(_ manifest: Manifest, into overlay: inout Overlay) {
        var rules = """
            # Liteqube: devices whose interfaces are all mass storage; anything mixed is rejected.
            allow with-interface all-of { 08:*:* }

            """
        if manifest.usbInputDevices {
            rules += """
                # Input devices (all interfaces HID), passed to dom0 by the input proxy.
                allow with-interface all-of { 03:*:* }

                """
        }
        overlay.directory("/etc/usbguard", mode: 0o755)
        overlay.file("/etc/usbguard/rules.conf", rules, mode: 0o600)
        overlay.file("/etc/usbguard/usbguard-daemon.conf", """
            RuleFile=/etc/usbguard/rules.conf
            ImplicitPolicyTarget=reject
            PresentDevicePolicy=apply-policy
            PresentControllerPolicy=allow
            InsertedDevicePolicy=apply-policy
            RestoreControllerDeviceState=false
            DeviceManagerBackend=uevent
            IPCAllowedUsers=root
            IPCAllowedGroups=
            DeviceRulesWithPort=false
            AuditBackend=LinuxAudit

            """, mode: 0o600)
        let usb = "/etc/protect/template.\(manifest.name("usb"))"
        overlay.directory(usb)
        overlay.directory(usb + "/config")
        overlay.script(usb + "/config/rc.local", """
            #!/bin/sh
            # Liteqube USB qube: devices pass usbguard before anything can use them; dom0 hears about storage.
            install -d -m 0755 /run/liteqube
            touch /run/liteqube/storage-signals
            systemctl start usbguard

            """)
        // USB storage notifications (the original's liteqube-amount), in the qube that starts them only.
        overlay.directory("/etc/udev")
        overlay.directory("/etc/udev/rules.d")
        overlay.file("/etc/udev/rules.d/99-liteqube-storage.rules", """
            # Liteqube: tell dom0 when USB storage comes and goes (liteqube-storage@.service, lq-storage).
            ACTION=="add", SUBSYSTEM=="block", KERNEL=="sd[a-z]|sd[a-z][0-9]*|xvd[i-z]|xvd[i-z][0-9]*", RUN+="/bin/systemctl --no-block start liteqube-storage@%k.service"
            ACTION=="remove", SUBSYSTEM=="block", KERNEL=="sd[a-z]|sd[a-z][0-9]*|xvd[i-z]|xvd[i-z][0-9]*", RUN+="/bin/systemctl --no-block stop liteqube-storage@%k.service"

            """)
        overlay.file("/etc/systemd/system/liteqube-storage@.service", """
            [Unit]
            Description=Liteqube: tell dom0 about USB storage %i
            ConditionPathExists=/run/liteqube/storage-signals

            [Service]
            Type=oneshot
            RemainAfterExit=yes
            ExecStart=\(programFolder)/lq-storage add %i
            ExecStop=\(programFolder)/lq-storage remove %i

            """)
    }
}
