import LQCommon
import QubesStore

extension Role {
    /// debian-core, the template every service qube runs from.
    public static let core = Role(rawValue: "core")
    /// The disposable template (always empty).
    public static let dvm = Role(rawValue: "dvm")
    /// The display qube that shows service qubes' terminals.
    public static let xorg = Role(rawValue: "xorg")
    /// The offline qube that serves secrets.
    public static let keys = Role(rawValue: "keys")
}

extension Manifest {
    public enum Profile: String, Sendable, Hashable, CaseIterable {
        /// Liteqube's documented sizes.
        case `default`
        /// The sizes seen running (mirage firewalls).
        case lowMemory = "low-memory"
    }

    /// The template debian-core is cloned from; `nil`: `debian-13-minimal`,
    /// else the newest installed `debian-N-minimal`.
    public var baseTemplate: String? {
        get { self[Base.baseTemplate] }
        set { self[Base.baseTemplate] = newValue }
    }

    public var profile: Profile {
        get { self[Base.profile] }
        set { self[Base.profile] = newValue }
    }

    /// Add `no-strict-reset=True` to moved PCI devices.
    public var noStrictReset: Bool {
        get { self[Base.noStrictReset] }
        set { self[Base.noStrictReset] = newValue }
    }
}

/// Base (docs/liteqube.md, "Base"): debian-core, its disposable template,
/// the display qube and the keys qube; the boot guard, the dpkg hook, the
/// read-only root and the split services every other component builds on.
enum Base {
    static let baseTemplate = Setting<String?>.text("base_template")
    static let profile = Setting<Manifest.Profile>("profile", default: .default)
    static let noStrictReset = Setting<Bool>("no_strict_reset", default: true)

    /// Units whose enablement links the dpkg hook keeps: the Qubes boot units
    /// a debian-core qube cannot start without (docs/liteqube.md, "The dpkg hook").
    static let keptUnits = [
        "getty@tty1.service", "liteqube-vm-template.service", "qubes-db.service", "qubes-early-vm-config.service",
        "qubes-bind-dirs.service", "qubes-misc-post.service", "qubes-mount-dirs.service", "qubes-qrexec-agent.service", "qubes-sync-time.timer",
        "qubes-sysinit.service", "systemd-pstore.service", "xendriverdomain.service",
    ]

    /// Units the dpkg hook masks: Debian 13's and the Qubes 4.3 agent's names (the agent turns swap
    /// on with `dev-xvdc1-swap.service`; debian-core has no swap).
    static let maskedUnits = [
        "cron.service", "dev-xvdc1-swap.service", "htpdate.service", "qubes-meminfo-writer.service", "remote-fs.target",
        "systemd-fsck-root.service", "systemd-journal-flush.service", "systemd-rfkill.service", "systemd-rfkill.socket",
        "systemd-tmpfiles-clean.timer",
    ]

    /// Units the hook masks where the release has them (Debian 12 only).
    static let maskedWherePresent = ["systemd-update-utmp-runlevel.service", "systemd-update-utmp.service"]

    /// The template debian-core is cloned from: the manifest's, else
    /// `debian-13-minimal`, else the newest installed `debian-N-minimal`.
    static func baseTemplate(_ manifest: Manifest, installed: [String]) throws -> (name: String, note: String?) {
        if let chosen = manifest.baseTemplate {
            guard installed.contains(chosen) else {
                throw ProvisioningError(.missingPrerequisite, "base template \(chosen) is not installed; run: qvm-template install \(chosen)")
            }
            return (chosen, nil)
        }
        let preferred = "debian-13-minimal"
        if installed.contains(preferred) { return (preferred, nil) }
        let versions = installed.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("debian-"), name.hasSuffix("-minimal"), let version = Int(name.dropFirst(7).dropLast(8)) else { return nil }
            return (version, name)
        }
        guard let newest = versions.max(by: { $0.0 < $1.0 }) else {
            throw ProvisioningError(.missingPrerequisite, "no debian-N-minimal template is installed; run: qvm-template install \(preferred)")
        }
        return (newest.1, "\(preferred) is not installed; debian-core is cloned from \(newest.1), the newest installed")
    }

    /// The programs, units, qrexec services, dpkg hook, apt settings, sudoers and fstab.
    static func system(_ overlay: inout Overlay) {
        let bin = Overlay.programFolder
        let manifest = overlay.manifest
        overlay.values["sudo_commands"] = manifest.components.flatMap { $0.sudoCommands(manifest) }.joined(separator: ", ")
        overlay.values["kept_units"] = keptUnits.joined(separator: " ")
        overlay.values["masked_units"] = maskedUnits.joined(separator: " ")
        overlay.values["masked_where_present"] = maskedWherePresent.joined(separator: " ")
        overlay.directory(bin)
        // The template package, installed once the packages are in (templatePackage).
        if let package = overlay.package {
            overlay.entry(TemplateEntry(path: package.templatePath, kind: .binary(source: package.source, sha256: package.sha256), mode: 0o644))
        }
        overlay.script(bin + "/template-package")
        overlay.script(bin + "/post-install")
        // The removal policy and the program that applies it (docs/liteqube.md, "Slimming debian-core").
        overlay.values["slim_need"] = manifest.components.flatMap { $0.packages(manifest) }.joined(separator: " ")
        overlay.script(bin + "/slim")
        overlay.file(bin + "/slim.policy")
        overlay.file("/etc/apt/apt.conf.d/80liteqube")
        overlay.file("/etc/sudoers.d/liteqube", mode: 0o440)
        overlay.file("/etc/fstab")
        overlay.file("/etc/systemd/system/liteqube-vm-template.service")
        overlay.directory("/etc/systemd/system/sysinit.target.wants")
        overlay.link("/etc/systemd/system/sysinit.target.wants/liteqube-vm-template.service", "/etc/systemd/system/liteqube-vm-template.service")
        overlay.file("/etc/systemd/system/liteqube-shutdown-inactive.service")
        // Boot guard findings reach dom0 once qrexec is up.
        overlay.script("/etc/rc.local")
        overlay.directory("/etc/qubes-rpc")
        for service in ["SplitFile", "SplitPassword", "SplitPasswordSave", "SplitFileSave", "SplitFileChecksum", "SplitPasswordChecksum"] {
            overlay.script("/etc/qubes-rpc/liteqube." + service)
        }
    }

    /// What base runs once the packages are in: the template package, then the slimming.
    static func settle(_ overlay: inout Overlay) {
        templatePackage(&overlay)
        slim(&overlay)
    }

    /// The template package (docs/packaging.md, "The template package"): `template-package install`
    /// runs dpkg -i on the copy apply placed; its check holds while dpkg has that very package installed
    /// unchanged, so a rebuilt package installs again; destroy purges it.
    static func templatePackage(_ overlay: inout Overlay) {
        guard let package = overlay.package else { return }
        let program = Overlay.programFolder + "/template-package"
        overlay.command(TemplateCommand(
            summary: "install the template package \(TemplatePackage.name) \(package.version)", run: "\(program) install \(package.templatePath)",
            check: "\(program) check \(package.templatePath)", undo: "\(program) remove \(TemplatePackage.name)"))
    }

    /// Slimming debian-core once the packages are in (docs/liteqube.md, "Slimming debian-core"): `slim apply`
    /// names the policy it was planned with by its sha256, so a policy changed since the plan is refused and a
    /// changed manifest (another package list) slims again.
    static func slim(_ overlay: inout Overlay) {
        let program = Overlay.programFolder + "/slim"
        let digest = sha256Hex(Array(overlay.text(Overlay.programFolder + "/slim.policy").utf8))
        overlay.command(TemplateCommand(
            summary: "remove the packages no component needs", run: "\(program) apply \(digest)",
            check: "\(program) check \(digest)", undo: "\(program) restore"))
    }

    /// The guard's trees (docs/boot-guard.md, "Trees"; docs/liteqube.md, "Base trees") for every qube and for base's own.
    static func trees(_ overlay: inout Overlay) {
        let protect = Overlay.protect
        overlay.directory(protect, mode: 0o750)
        guardSettings(&overlay)
        let all = "\(protect)/template.ALL"
        overlay.directory(all)
        overlay.directory(all + "/config")
        overlay.script(all + "/config/rc.local")
        overlay.script(all + "/config/qubes-firewall-user-script")
        overlay.file(all + "/config/suspend-module-blacklist", content: "")
        overlay.directory(all + "/home")
        overlay.directory(all + "/home/user", owner: "user", mode: 0o750)
        overlay.file(all + "/home/user/.bashrc", owner: "user")
        overlay.file(all + "/home/user/.profile", owner: "user")
        overlay.directory(all + "/home/user/.config", owner: "user")
        overlay.file(all + "/home/user/.config/user-dirs.dirs", owner: "user")
        overlay.file(all + "/home/user/.config/user-dirs.locale", owner: "user")
        overlay.directory(all + "/home/user/.config/autostart", owner: "user")
        // The desktop's autostart entries turned off, once the packages that ship them are in.
        let autostart = Overlay.programFolder + "/autostart"
        overlay.script(autostart)
        overlay.command(TemplateCommand(
            summary: "turn off the desktop's autostart entries in every qube", run: "\(autostart) apply", check: "\(autostart) check",
            undo: "\(autostart) restore"))
        overlay.link(all + "/home/user/.cache", "/tmp")
        overlay.link(all + "/home/user/.local", "/tmp")
        overlay.link(all + "/home/user/.xsession-errors", "/dev/null")
        overlay.directories(all, "bind-dirs/var/spool/cron/crontabs")
        overlay.directory(all + "/lost+found", mode: 0o700)
        overlay.directory(all + "/usrlocal", mode: 0o775)

        // Every Liteqube qube resolves its own name (docs/liteqube.md, "Base trees").
        overlay.values["qube_hosts"] = overlay.manifest.components.flatMap(\.roles).map { "127.0.1.1\t" + overlay.manifest.name($0.role) }
            .joined(separator: "\n")
        overlay.file("/etc/hosts")

        overlay.qubeTemplate(.core)
        overlay.qubeTemplate(.dvm)
        overlay.qubeTemplate(.keys)
        let pins = "\(protect)/checksum.{{keys}}"
        overlay.directory(pins, mode: 0o700)
        overlay.directory(pins + "/home")
        overlay.directory(pins + "/home/user", owner: "user", mode: 0o700)
        overlay.directory(pins + "/home/user/.ssh", owner: "user", mode: 0o700)

        splitDisplay(&overlay)
        let xorg = overlay.qubeTemplate(.xorg)
        overlay.directory(xorg + "/usrlocal", mode: 0o775)
        overlay.directory(xorg + "/usrlocal/bin")
        overlay.script(xorg + "/usrlocal/bin/liteqube-shutdown-inactive")
    }

    /// Terminals in service qubes (docs/liteqube.md, "Terminals"): a qube without its own X server gets
    /// a display socket whose connections go to the display qube's X server over qrexec, one at a time
    /// and each asked for; `lq xterm` runs `liteqube-xterm` there as root with the command as argv.
    static func splitDisplay(_ overlay: inout Overlay) {
        overlay.file("/etc/systemd/system/liteqube-split-xorg.socket")
        overlay.file("/etc/systemd/system/liteqube-split-xorg@.service")
        overlay.script("/etc/qubes-rpc/liteqube.SplitXorg")
        overlay.script(Overlay.programFolder + "/liteqube-xterm")
    }
}

extension Component {
    public static let base = Component(id: "base") { base in
        base.roles = [
            RoleSpec(.core, name: "debian-core", presence: .transient, memory: 1024),
            RoleSpec(.dvm, name: "core-dvm", presence: .transient, memory: 512),
            RoleSpec(.xorg, name: "core-xorg", presence: .onDemand, memory: 512),
            RoleSpec(.keys, name: "core-keys", presence: .onDemand, memory: 160),
        ]
        base.settings = [Base.baseTemplate.erased, Base.profile.erased, Base.noStrictReset.erased, Base.packages.erased, Base.passwordClients.erased]
        base.qubes = { desired in
            let template = try Base.baseTemplate(desired.manifest, installed: desired.templates)
            if let note = template.note { desired.notes.append(note) }
            let core = desired.name(.core)
            let dvm = desired.name(.dvm)
            desired.add(.core, .templateVM, label: .template) { $0.cloneOf = template.name }
            desired.add(.dvm, .appVM) {
                $0.template = core
                $0.templateForDispvms = true
            }
            desired.add(.xorg, .dispVM) {
                $0.template = dvm
                $0.showsWindows = true
            }
            desired.add(.keys, .appVM) { $0.template = core }
        }
        base.packages = { manifest in
            ["ca-certificates", "fonts-terminus-otb", "netcat-openbsd", "openssh-client", "stterm", "x11-utils"] + manifest.packages
        }
        base.system = Base.system
        base.settle = Base.settle
        base.trees = Base.trees
        base.policy = { policy in
            policy.notify([.core, .dvm, .xorg, .keys])
            policy.display([.dvm, .keys])
            Base.passwordPolicy(&policy)
        }
        base.dom0Services = { manifest in
            [
                Dom0Service(name: "liteqube.Message", urgency: "normal", milliseconds: 2000, icon: "dialog-information", text: "base/dom0/text/plain"),
                Dom0Service(name: "liteqube.Error", urgency: "critical", milliseconds: 5000, icon: "dialog-error", text: "base/dom0/text/plain"),
            ] + Base.passwordPrompt(manifest)
        }
        base.sudoCommands = { _ in ["/usr/bin/systemctl poweroff", "/usr/sbin/shutdown"] }
    }
}
