import QubesStore

/// How a qube's kernel runs.
public enum VirtMode: String, Sendable, Hashable {
    case pv, pvh, hvm
}

/// One Liteqube qube as its component wants it.
public struct DesiredQube: Sendable, Hashable {
    public var role: Role
    public var name: String
    public var vmClass: VMClass
    /// The template (AppVM, DispVM).
    public var template: String?
    /// For a TemplateVM cloned from another (debian-core).
    public var cloneOf: String?
    public var label: String
    /// MiB; `maxmem` is always 0 (no memory balancing for service qubes).
    public var memory: Int
    public var vcpus = 1
    public var virtMode: VirtMode?
    public var kernel: String?
    public var providesNetwork = false
    public var templateForDispvms = false
    /// The qube it gets its network from; "" = none.
    public var netvm = ""
    public var autostart = false
    /// The qube whose PCI devices this qube takes over.
    public var devicesFrom: String?
    public var presence: Presence
    /// Whether it runs the GUI agent (shows windows of its own).
    public var showsWindows = false
    /// Features as Admin API text, set in the order of their names.
    public var features: [String: String] = [:]

    /// Properties in the order they are set; values as Admin API text ("" = none).
    public var properties: [(name: String, value: String)] {
        var properties: [(name: String, value: String)] = [("memory", String(memory)), ("maxmem", "0"), ("vcpus", String(vcpus))]
        if let virtMode { properties.append(("virt_mode", virtMode.rawValue)) }
        if let kernel { properties.append(("kernel", kernel)) }
        if providesNetwork { properties.append(("provides_network", "True")) }
        if templateForDispvms { properties.append(("template_for_dispvms", "True")) }
        properties.append(("netvm", netvm))
        properties.append(("audiovm", ""))
        if autostart { properties.append(("autostart", "True")) }
        return properties
    }

    /// Whether it runs as HVM (then a 144 MiB stub domain comes with it).
    public var isHVM: Bool { virtMode == .hvm }
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

    /// The desired state of `manifest` on a system with these TemplateVMs,
    /// qubes and installed kernels (`nil`: do not check kernels).
    public init(_ manifest: Manifest, templates: [String], qubes: Set<String>, kernels: Set<String>?) throws {
        var builder = DesiredBuilder(manifest: manifest, templates: templates, existing: qubes, kernels: kernels)
        for component in manifest.components { try component.qubes(&builder) }
        self.qubes = builder.qubes
        self.globals = builder.globals
        self.retired = builder.retired
        self.notes = builder.notes
        self.policy = try PolicyRules.text(manifest)
    }
}

/// What a component's `qubes` sees of the system and adds to the desired state.
struct DesiredBuilder {
    let manifest: Manifest
    /// TemplateVMs installed.
    let templates: [String]
    /// Every qube there is.
    let existing: Set<String>
    /// Kernels installed in dom0 (`nil`: unknown).
    let kernels: Set<String>?
    var qubes: [DesiredQube] = []
    var globals: [(name: String, value: String)] = []
    var retired: [RetiredQube] = []
    var notes: [String] = []

    func name(_ role: Role) -> String { manifest.name(role) }

    /// Adds the qube of `role` with its name, memory, label and presence
    /// from the manifest and the role's spec; `configure` sets the rest.
    mutating func add(_ role: Role, _ vmClass: VMClass, label: Manifest.LabelKind = .workers, configure: (inout DesiredQube) -> Void = { _ in }) {
        var qube = DesiredQube(
            role: role, name: name(role), vmClass: vmClass, label: manifest.label(label), memory: manifest.memory(of: role),
            presence: manifest.catalog.spec(role)?.presence ?? .transient)
        configure(&qube)
        // A qube without the GUI agent is not sent the monitor layout (docs/liteqube.md, "Headless qubes").
        if qube.vmClass != .templateVM, !qube.templateForDispvms, !qube.showsWindows { qube.features["no-monitor-layout"] = "1" }
        qubes.append(qube)
    }

    /// Retires the qube `role` replaces (docs/liteqube.md, "Global properties and retired qubes") when it exists.
    mutating func retire(for role: Role, prohibitStart: Bool) {
        guard let old = manifest.replaced(role) else { return }
        guard existing.contains(old) else {
            if manifest.sysNames[role] != nil { notes.append("sys_names.\(role): there is no qube \(old), so \(name(role)) retires none") }
            return
        }
        retired.append(RetiredQube(name: old, replacement: name(role), prohibitStart: prohibitStart))
    }

    /// The qube `role` replaces when it exists (the qube whose PCI devices move).
    func devices(replacedBy role: Role) -> String? { manifest.replaced(role).flatMap { existing.contains($0) ? $0 : nil } }
}
