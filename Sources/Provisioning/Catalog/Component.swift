import QubesStore

/// What a Liteqube qube is for (`core`, `net`, `fw-net`, …): the key of its
/// name, memory and label in the manifest. Each component declares its roles
/// as static members next to everything else about it.
public struct Role: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

/// When a qube usually runs (docs/liteqube.md, "Presence groups").
public enum Presence: String, Sendable, Hashable, Codable, CaseIterable {
    /// Always running (default netvm, device qubes).
    case alwaysOn = "always-on"
    /// Started when something needs it.
    case onDemand = "on-demand"
    /// Only during installs and updates, or never.
    case transient
}

/// The fixed facts of a role: its qube's default name, when it runs, its
/// memory per profile, and whether it is one of the service qubes the memory
/// comparison with the Qubes defaults counts.
public struct RoleSpec: Sendable {
    public var role: Role
    public var defaultName: String
    public var presence: Presence
    /// Counted in the service total (fw-net, core-net, core-tor, core-usb: the set Liteqube measured).
    public var inServiceTotal: Bool
    /// The default Qubes service qube it replaces (`sys-net`, …), unless the manifest's `sys_names:` names another.
    public var replaces: String?
    /// MiB for a manifest, unless its `memory:` names the role.
    var memory: @Sendable (Manifest) -> Int

    init(
        _ role: Role, name: String, presence: Presence, inServiceTotal: Bool = false, replaces: String? = nil,
        memory: @escaping @Sendable (Manifest) -> Int
    ) {
        self.role = role
        self.defaultName = name
        self.presence = presence
        self.inServiceTotal = inServiceTotal
        self.replaces = replaces
        self.memory = memory
    }

    init(_ role: Role, name: String, presence: Presence, inServiceTotal: Bool = false, replaces: String? = nil, memory mib: Int) {
        self.init(role, name: name, presence: presence, inServiceTotal: inServiceTotal, replaces: replaces) { _ in mib }
    }
}

/// One Liteqube component (`base`, `network`, `usb`, …): everything about it
/// in one value, declared in its own file under `Components/` with its texts
/// in `Resources/<id>/`. The manifest parser, planner, memory report, policy
/// file and dom0 services read components only through these fields
/// (docs/components.md).
public struct Component: Sendable, Hashable, CustomStringConvertible {
    /// The name in the manifest's `components:` list.
    public let id: String
    public var roles: [RoleSpec] = []
    /// The manifest settings it reads.
    var settings: [AnySetting] = []
    /// Its qubes, global properties and the default qubes it retires.
    var qubes: @Sendable (inout DesiredBuilder) throws -> Void = { _ in }
    /// Debian packages debian-core needs for it.
    var packages: @Sendable (Manifest) -> [String] = { _ in [] }
    /// Template entries placed before the packages are installed (the dpkg hook must come first).
    var system: @Sendable (inout Overlay) -> Void = { _ in }
    /// Template commands run once the packages are installed, before the trees (base's slimming).
    var settle: @Sendable (inout Overlay) -> Void = { _ in }
    /// Template entries placed after the packages (they may need the packages' users and folders).
    var trees: @Sendable (inout Overlay) -> Void = { _ in }
    /// Entries for the keys qube's private volume (secrets it serves).
    var keysEntries: @Sendable (Manifest, [NetworkConnection], MACSecretKey?) -> [TemplateEntry] = { _, _, _ in [] }
    /// Its qrexec policy rules, in file order.
    var policy: @Sendable (inout PolicyBuilder) -> Void = { _ in }
    /// dom0 qrexec services its qubes call.
    var dom0Services: @Sendable (Manifest) -> [Dom0Service] = { _ in [] }
    /// Commands `user` may run as root in its qubes (sudoers).
    var sudoCommands: @Sendable (Manifest) -> [String] = { _ in [] }

    init(id: String, configure: (inout Component) -> Void) {
        self.id = id
        configure(&self)
    }

    public var description: String { id }
    public static func == (lhs: Component, rhs: Component) -> Bool { lhs.id == rhs.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

/// The components a manifest may name, in the order their qubes, files and
/// rules are laid out.
public struct Catalog: Sendable, Hashable {
    public var components: [Component]

    public init(components: [Component]) { self.components = components }

    /// Liteqube's components.
    public static let liteqube = Catalog(components: [.base, .network, .usb, .vpn, .splitSSH])

    /// Every role of every component.
    public var roles: [RoleSpec] { components.flatMap(\.roles) }

    public func spec(_ role: Role) -> RoleSpec? { roles.first { $0.role == role } }

    func component(_ id: String) -> Component? { components.first { $0.id == id } }

    /// The service qubes of a default Qubes install.
    public static let qubesDefaults: [(name: String, memory: Int, hvm: Bool)] = [
        ("sys-net", 300, true), ("sys-usb", 300, true), ("sys-firewall", 500, false), ("sys-whonix", 500, false),
    ]
}
