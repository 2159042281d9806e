import OrderedCollections

/// The class of a qube, as written in `<domain class="…">`.
public enum VMClass: String, Sendable, Hashable, CaseIterable, Codable {
    case adminVM = "AdminVM"
    case appVM = "AppVM"
    case templateVM = "TemplateVM"
    case dispVM = "DispVM"
    case standaloneVM = "StandaloneVM"
    case remoteVM = "RemoteVM"

    /// Whether qubes of this class have volumes (`<volume-config>`).
    public var hasVolumes: Bool { self != .adminVM && self != .remoteVM }
    /// Whether qubes of this class are based on a template.
    public var hasTemplate: Bool { self == .appVM || self == .dispVM }
    /// Whether this is one of the QubesVM classes (not dom0, not remote).
    public var isQubesVM: Bool { hasVolumes }
    /// Whether qubes of this class have a `netvm` (every QubesVM).
    public var hasNetVM: Bool { isQubesVM }
    /// Whether qubes of this class may be disposable templates (`template_for_dispvms`).
    public var canBeDispVMTemplate: Bool { self == .appVM || self == .standaloneVM }
}

/// A label (colour) qubes can wear.
public struct Label: Sendable, Hashable {
    public var index: Int
    /// The colour text, kept verbatim (`0xcc0000`); `nil` makes every save fail as in qubesd.
    public var color: String?
    public var name: String

    public init(index: Int, color: String?, name: String) {
        self.index = index
        self.color = color
        self.name = name
    }
}

/// A storage pool; its attributes are kept in the order they are written.
public struct Pool: Sendable, Hashable {
    public var name: String
    public var driver: String
    /// Every attribute of the `<pool>` element, `name` and `driver` included, in save order.
    public var attributes: [XMLNode.Attribute]

    public init(name: String, driver: String, attributes: [XMLNode.Attribute]) {
        self.name = name
        self.driver = driver
        self.attributes = attributes
    }

    /// The value of attribute `name`.
    public subscript(attribute name: String) -> String? {
        attributes.first { $0.name == name }?.value
    }
}

/// How a device assignment attaches (qubesd's `AssignmentMode`).
public enum AssignmentMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// Attach only when asked; qubesd never saves this mode as an assignment.
    case manual
    /// Ask the user before attaching.
    case askToAttach = "ask-to-attach"
    /// Attach whenever the device and the qube are there.
    case autoAttach = "auto-attach"
    /// Attach at start; the qube does not start without it.
    case required

    /// The modes an assignment may have (all but `manual`).
    public var isAutoAttachable: Bool { self != .manual }
}

/// One device assigned to a qube.
public struct DeviceAssignment: Sendable, Hashable {
    /// The backend qube's name; `nil` means any (`*`).
    public var backendDomain: String?
    /// The port id (`00_14.3` for PCI); `*` for any.
    public var port: String
    /// The device identity (`8086:a0f0::p028000`); `*` for any.
    public var identity: String
    /// `required`, `auto-attach` or `ask-to-attach`.
    public var mode: AssignmentMode
    /// Options in insertion order; a `nil` name loads but makes every save fail, as in qubesd.
    public var options: [(name: String?, value: String)]

    public init(
        backendDomain: String?, port: String, identity: String, mode: AssignmentMode,
        options: [(name: String?, value: String)] = []
    ) {
        self.backendDomain = backendDomain
        self.port = port
        self.identity = identity
        self.mode = mode
        self.options = options
    }

    public static func == (lhs: DeviceAssignment, rhs: DeviceAssignment) -> Bool {
        lhs.backendDomain == rhs.backendDomain && lhs.port == rhs.port && lhs.identity == rhs.identity
            && lhs.mode == rhs.mode && lhs.options.elementsEqual(rhs.options) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(backendDomain)
        hasher.combine(port)
        hasher.combine(identity)
    }
}

/// A volume of a qube, as saved in `<volume-config>`.
///
/// Values are the saved texts: qubesd writes back non-boolean `rw` texts
/// (`yes`) verbatim, so they are kept as text; `isTrue` reads them as qubesd does.
public struct Volume: Sendable, Hashable {
    public var name: String
    public var pool: String
    public var vid: String
    public var revisionsToKeep: String
    public var rw: String
    public var saveOnStop: String
    public var snapOnStart: String
    /// Written only when given explicitly.
    public var ephemeral: String?
    /// Size in bytes; not written when zero.
    public var size: String?
    /// The vid of the volume this one is a snapshot of.
    public var source: String?

    public init(
        name: String, pool: String, vid: String, revisionsToKeep: String, rw: String, saveOnStop: String,
        snapOnStart: String, ephemeral: String? = nil, size: String? = nil, source: String? = nil
    ) {
        self.name = name
        self.pool = pool
        self.vid = vid
        self.revisionsToKeep = revisionsToKeep
        self.rw = rw
        self.saveOnStop = saveOnStop
        self.snapOnStart = snapOnStart
        self.ephemeral = ephemeral
        self.size = size
        self.source = source
    }

    /// The attributes of the saved `<volume>` element, in order.
    public var savedAttributes: [XMLNode.Attribute] {
        var attributes: [XMLNode.Attribute] = [
            .init(name: "name", value: name), .init(name: "pool", value: pool), .init(name: "vid", value: vid),
            .init(name: "revisions_to_keep", value: revisionsToKeep), .init(name: "rw", value: rw),
            .init(name: "save_on_stop", value: saveOnStop), .init(name: "snap_on_start", value: snapOnStart),
        ]
        if let ephemeral { attributes.append(.init(name: "ephemeral", value: ephemeral)) }
        if let size { attributes.append(.init(name: "size", value: size)) }
        if let source { attributes.append(.init(name: "source", value: source)) }
        return attributes
    }

    /// Python truthiness of a saved flag text: `True` and any non-empty text
    /// other than `False` count as true.
    public static func isTrue(_ text: String) -> Bool { !text.isEmpty && text != "False" }
}

/// One qube (`<domain>`).
///
/// A value type whose fields live in one shared, copy-on-write box, so
/// copying a qube (lookups, sorting, snapshots) costs one reference count.
public struct Domain: @unchecked Sendable {
    private final class Storage {
        var vmClass: VMClass
        var qid: Int
        var name: String
        var uuid: String
        var properties: [String: String]
        var noneProperties: Set<String>
        var features: OrderedDictionary<ExactString, String>
        var tags: OrderedSet<ExactString>
        var devices: OrderedDictionary<String, [DeviceAssignment]>
        var volumes: [Volume]

        init(
            vmClass: VMClass, qid: Int, name: String, uuid: String, properties: [String: String],
            noneProperties: Set<String>, features: OrderedDictionary<ExactString, String>, tags: OrderedSet<ExactString>,
            devices: OrderedDictionary<String, [DeviceAssignment]>, volumes: [Volume]
        ) {
            self.vmClass = vmClass
            self.qid = qid
            self.name = name
            self.uuid = uuid
            self.properties = properties
            self.noneProperties = noneProperties
            self.features = features
            self.tags = tags
            self.devices = devices
            self.volumes = volumes
        }

        func copy() -> Storage {
            Storage(
                vmClass: vmClass, qid: qid, name: name, uuid: uuid, properties: properties, noneProperties: noneProperties,
                features: features, tags: tags, devices: devices, volumes: volumes)
        }
    }

    private var storage: Storage

    private mutating func unique() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    public var vmClass: VMClass {
        get { storage.vmClass }
        _modify { yield &unique().vmClass }
        set { unique().vmClass = newValue }
    }

    public var qid: Int {
        get { storage.qid }
        _modify { yield &unique().qid }
        set { unique().qid = newValue }
    }

    public var name: String {
        get { storage.name }
        _modify { yield &unique().name }
        set { unique().name = newValue }
    }

    /// Canonical lower-case uuid text.
    public var uuid: String {
        get { storage.uuid }
        _modify { yield &unique().uuid }
        set { unique().uuid = newValue }
    }

    /// Explicit properties other than `name`, `qid` and `uuid`: name → saved text.
    public var properties: [String: String] {
        get { storage.properties }
        _modify { yield &unique().properties }
        set { unique().properties = newValue }
    }

    /// Explicit text properties whose value is "no value" (an empty element
    /// of a plain text property): saved as the text `None`, read as none.
    public var noneProperties: Set<String> {
        get { storage.noneProperties }
        _modify { yield &unique().noneProperties }
        set { unique().noneProperties = newValue }
    }

    /// Features in insertion order: name → value.
    public var features: OrderedDictionary<ExactString, String> {
        get { storage.features }
        _modify { yield &unique().features }
        set { unique().features = newValue }
    }

    /// Tags, in the order they were added.
    public var tags: OrderedSet<ExactString> {
        get { storage.tags }
        _modify { yield &unique().tags }
        set { unique().tags = newValue }
    }

    /// Device assignments per device class, classes in order of first use.
    public var devices: OrderedDictionary<String, [DeviceAssignment]> {
        get { storage.devices }
        _modify { yield &unique().devices }
        set { unique().devices = newValue }
    }

    /// Volumes in save order.
    public var volumes: [Volume] {
        get { storage.volumes }
        _modify { yield &unique().volumes }
        set { unique().volumes = newValue }
    }

    public init(
        vmClass: VMClass, qid: Int, name: String, uuid: String, properties: [String: String] = [:],
        features: OrderedDictionary<ExactString, String> = [:], tags: OrderedSet<ExactString> = [],
        devices: OrderedDictionary<String, [DeviceAssignment]> = [:], volumes: [Volume] = []
    ) {
        storage = Storage(
            vmClass: vmClass, qid: qid, name: name, uuid: uuid, properties: properties, noneProperties: [],
            features: features, tags: tags, devices: devices, volumes: volumes)
    }

    /// The name → saved text of every explicit property, `name`, `qid` and `uuid` included.
    public var explicitProperties: [String: String] {
        var all = properties
        if vmClass != .adminVM {
            all["name"] = name
            all["qid"] = String(qid)
            all["uuid"] = uuid
        }
        return all
    }

    /// Whether any PCI device is assigned.
    public var hasPCIDevices: Bool { !(devices["pci"]?.isEmpty ?? true) }
}

/// A warning about a store: something qubesd accepts (or silently changes)
/// that is wrong or dangerous.
public struct StoreFinding: Sendable, Hashable, CustomStringConvertible {
    public var qube: String?
    public var field: String?
    public var value: String?
    public var message: String

    public init(qube: String?, field: String?, value: String?, message: String) {
        self.qube = qube
        self.field = field
        self.value = value
        self.message = message
    }

    public var description: String {
        var context: [String] = []
        if let qube { context.append("qube '\(qube)'") }
        if let field { context.append("field '\(field)'") }
        if let value { context.append("value '\(value)'") }
        return context.isEmpty ? message : message + " (" + context.joined(separator: ", ") + ")"
    }
}
