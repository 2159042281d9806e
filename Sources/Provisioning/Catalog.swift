import QubesStore

/// When a qube usually runs (spec §7.1), for the memory budget.
public enum Presence: String, Sendable, Hashable, Codable, CaseIterable {
    /// Always running (default netvm, device qubes).
    case alwaysOn = "always-on"
    /// Started when something needs it.
    case onDemand = "on-demand"
    /// Only during installs and updates, or never.
    case transient
}

/// One Liteqube qube as the catalog wants it.
public struct DesiredQube: Sendable, Hashable {
    public var role: String
    public var name: String
    public var vmClass: VMClass
    /// The template (AppVM, DispVM).
    public var template: String?
    /// For a TemplateVM cloned from another (debian-core).
    public var cloneOf: String?
    public var label: String
    /// Properties in the order they are set; values as Admin API text ("" = none).
    public var properties: [(name: String, value: String)]
    /// The qube whose PCI devices this qube takes over.
    public var devicesFrom: String?
    public var presence: Presence

    public static func == (lhs: DesiredQube, rhs: DesiredQube) -> Bool {
        lhs.name == rhs.name && lhs.vmClass == rhs.vmClass && lhs.template == rhs.template
            && lhs.properties.elementsEqual(rhs.properties) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(name) }

    /// The memory this qube is given (MiB).
    public var memory: Int { Int(properties.first { $0.name == "memory" }?.value ?? "") ?? 400 }
    /// Whether it runs as HVM (then a 144 MiB stub domain comes with it).
    public var isHVM: Bool { properties.contains { $0.name == "virt_mode" && $0.value == "hvm" } }
}

/// A default service qube Liteqube replaces: stopped from starting, its devices moved.
public struct RetiredQube: Sendable, Hashable {
    public var name: String
    /// The Liteqube qube that takes over.
    public var replacement: String
    /// Whether it also gets `prohibit-start` (the qubes whose devices move).
    public var prohibitStart: Bool
}

/// The whole desired state for a manifest.
public struct DesiredState: Sendable {
    public var qubes: [DesiredQube]
    public var globals: [(name: String, value: String)]
    public var retired: [RetiredQube]
    public var policy: String
    /// Notes for the plan (fallbacks taken).
    public var notes: [String]
}

/// The Liteqube components as data (spec §2.0 master table, §2.1–2.3, §3, §4.2).
public enum Catalog {
    /// The service qubes of a default Qubes install.
    public static let qubesDefaults: [(name: String, memory: Int, hvm: Bool)] = [
        ("sys-net", 300, true), ("sys-usb", 300, true), ("sys-firewall", 500, false), ("sys-whonix", 500, false),
    ]

    /// Memory per role and profile (MiB).
    static func memory(_ role: String, _ manifest: Manifest) -> Int {
        if let explicit = manifest.memory[role] { return explicit }
        let low = manifest.profile == .lowMemory
        switch role {
        case "core": return 1024
        case "dvm", "xorg": return 512
        case "keys": return 160
        case "fw-net", "fw-tor": return manifest.effectiveFirewall == .mirage ? 32 : 128
        case "fw-base", "fw-dvm": return 64
        case "net": return low ? 192 : 240
        case "tor": return low ? 144 : 176
        case "update": return 4096
        case "usb": return low ? 176 : 208
        default: return 400
        }
    }

    /// The template debian-core is cloned from: the manifest's, else
    /// `debian-13-minimal`, else the newest installed `debian-N-minimal`.
    public static func baseTemplate(_ manifest: Manifest, installed: [String]) throws -> (name: String, note: String?) {
        if let chosen = manifest.baseTemplate {
            guard installed.contains(chosen) else {
                throw ProvisioningError("base template \(chosen) is not installed; run: qvm-template install \(chosen)")
            }
            return (chosen, nil)
        }
        let preferred = "debian-13-minimal"
        if installed.contains(preferred) { return (preferred, nil) }
        let versions = installed.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("debian-"), name.hasSuffix("-minimal"),
                let version = Int(name.dropFirst(7).dropLast(8))
            else { return nil }
            return (version, name)
        }
        guard let newest = versions.max(by: { $0.0 < $1.0 }) else {
            throw ProvisioningError("no debian-N-minimal template is installed; run: qvm-template install \(preferred)")
        }
        return (newest.1, "\(preferred) is not installed; debian-core is cloned from \(newest.1), the newest installed")
    }

    /// The desired state of `manifest` on a system with these TemplateVMs,
    /// qubes and installed kernels (`nil`: do not check kernels).
    public static func desiredState(
        _ manifest: Manifest, templates: [String], qubes: Set<String>, kernels: Set<String>?
    ) throws -> DesiredState {
        let name = manifest.name
        let (base, note) = try baseTemplate(manifest, installed: templates)
        let workers = manifest.label("workers")
        var desired: [DesiredQube] = []
        func add(
            _ role: String, _ vmClass: VMClass, template: String? = nil, cloneOf: String? = nil, label: String? = nil,
            vcpus: Int = 1, virtMode: String? = nil, netvm: String = "", providesNetwork: Bool = false,
            templateForDispvms: Bool = false, autostart: Bool = false, kernel: String? = nil, devicesFrom: String? = nil
        ) {
            var properties: [(name: String, value: String)] = [
                ("memory", String(memory(role, manifest))), ("maxmem", "0"), ("vcpus", String(vcpus)),
            ]
            if let virtMode { properties.append(("virt_mode", virtMode)) }
            if let kernel { properties.append(("kernel", kernel)) }
            if providesNetwork { properties.append(("provides_network", "True")) }
            if templateForDispvms { properties.append(("template_for_dispvms", "True")) }
            properties.append(("netvm", netvm))
            properties.append(("audiovm", ""))
            if autostart { properties.append(("autostart", "True")) }
            desired.append(
                DesiredQube(
                    role: role, name: name(role), vmClass: vmClass, template: template, cloneOf: cloneOf,
                    label: label ?? workers, properties: properties, devicesFrom: devicesFrom, presence: presence(of: role)))
        }
        add("core", .templateVM, cloneOf: base, label: manifest.label("template"))
        add("dvm", .appVM, template: name("core"), templateForDispvms: true)
        add("xorg", .dispVM, template: name("dvm"))
        add("keys", .appVM, template: name("core"))
        var globals: [(name: String, value: String)] = []
        var retired: [RetiredQube] = []
        if manifest.components.contains(.network) {
            let mirage = manifest.effectiveFirewall == .mirage
            if mirage, let kernels, !kernels.contains("mirage-firewall") {
                throw ProvisioningError(
                    "the mirage firewall needs its kernel in /var/lib/qubes/vm-kernels/mirage-firewall (install qubes-mirage-firewall in dom0), or set firewall: linux")
            }
            let netClass: VMClass = manifest.disposableNetVM ? .dispVM : .appVM
            let netTemplate = manifest.disposableNetVM ? name("dvm") : name("core")
            add(
                "net", netClass, template: netTemplate, virtMode: "hvm", providesNetwork: true,
                autostart: true, devicesFrom: qubes.contains("sys-net") ? "sys-net" : nil)
            var firewallTemplate = name("dvm")
            if mirage {
                add("fw-base", .templateVM, label: manifest.label("template"), virtMode: "pvh", kernel: "mirage-firewall")
                add("fw-dvm", .appVM, template: name("fw-base"), virtMode: "pvh", templateForDispvms: true)
                firewallTemplate = name("fw-dvm")
            }
            add("fw-net", .dispVM, template: firewallTemplate, netvm: name("net"), providesNetwork: true)
            add("tor", .appVM, template: name("core"), virtMode: "pvh", netvm: name("fw-net"), providesNetwork: true)
            add("fw-tor", .dispVM, template: firewallTemplate, netvm: name("tor"), providesNetwork: true)
            add("update", .dispVM, template: name("dvm"), vcpus: 2, virtMode: "pvh", netvm: name("fw-tor"))
            globals = [("default_netvm", name("fw-net")), ("updatevm", name("update")), ("clockvm", name("tor"))]
            for old in ["sys-net", "sys-firewall", "sys-whonix"] where qubes.contains(old) {
                let replacement = old == "sys-net" ? name("net") : old == "sys-firewall" ? name("fw-net") : name("tor")
                retired.append(RetiredQube(name: old, replacement: replacement, prohibitStart: old == "sys-net"))
            }
        }
        if manifest.components.contains(.usb) {
            add(
                "usb", .dispVM, template: name("dvm"), virtMode: "hvm", autostart: true,
                devicesFrom: qubes.contains("sys-usb") ? "sys-usb" : nil)
            if qubes.contains("sys-usb") { retired.append(RetiredQube(name: "sys-usb", replacement: name("usb"), prohibitStart: true)) }
        }
        return DesiredState(qubes: desired, globals: globals, retired: retired, policy: try PolicyRules.text(manifest), notes: note.map { [$0] } ?? [])
    }
}

/// A provisioning failure with a message for the user.
public struct ProvisioningError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
