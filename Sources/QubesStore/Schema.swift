/// How a property's value is read from XML and normalised (qubesd's setter).
public enum PropertyKind: Sendable, Hashable {
    /// `True`/`False` from a case-insensitive literal; empty → `False`.
    case bool
    /// Python `int()`, any sign.
    case int
    /// Python `int()`, then `> 0`.
    case positiveInt
    /// Python `int()`, then `>= 0`.
    case nonNegativeInt
    /// Any text; an empty element becomes the text `None`.
    case string
    /// A qube name; empty means none.
    case qubeRef
    case label
    case uuid
    case qid
    case ipv4
    case ipv6
    case mac
    case virtMode
    case kernel
    case kernelopts
    case defaultUser
    case devicesDenied
    case keyboardLayout
    /// A storage pool name (global `default_pool*`).
    case pool
    /// Read-only or computed: present in a file, it fails the load.
    case readOnly
}

/// When qubesd's loader reads a property, which is also the save order's first key.
public enum LoadStage: Int, Sendable, Hashable, Comparable, CaseIterable {
    /// With the qube itself.
    case qube = 2
    /// The global (`Qubes`) properties.
    case global = 3
    /// References to other qubes, once all qubes exist.
    case references = 4

    public static func < (lhs: LoadStage, rhs: LoadStage) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One property of a class: the data behind load, save order and defaults.
public struct PropertySpec: Sendable, Hashable {
    public var name: String
    public var kind: PropertyKind
    /// When it is loaded.
    public var stage: LoadStage
    /// Write-once: a second value in the file fails the load.
    public var writeOnce: Bool

    init(_ name: String, _ kind: PropertyKind, stage: LoadStage = .qube, writeOnce: Bool = false) {
        self.name = name
        self.kind = kind
        self.stage = stage
        self.writeOnce = writeOnce
    }
}

/// The property table of qubes.xml per class, from qubesd's classes.
public enum Schema {
    private static let P: Set<VMClass> = [.appVM, .templateVM, .dispVM, .standaloneVM]
    private static let A: Set<VMClass> = [.adminVM]
    private static let R: Set<VMClass> = [.remoteVM]
    private static let PA: Set<VMClass> = P.union(A)
    private static let PR: Set<VMClass> = P.union(R)
    private static let PAR: Set<VMClass> = PA.union(R)

    /// (spec, classes that have it).
    private static let table: [(PropertySpec, Set<VMClass>)] = declared + computedEntries

    private static let computedEntries: [(PropertySpec, Set<VMClass>)] =
        computed.map { (PropertySpec($0, .readOnly), P) } + [
            (PropertySpec("is_preload", .readOnly), Set<VMClass>([.dispVM])),
            (PropertySpec("icon", .readOnly), A.union(R)),
            (PropertySpec("klass", .readOnly), A.union(R)),
        ]

    private static let declared: [(PropertySpec, Set<VMClass>)] = [
        (PropertySpec("appvm_default_bootmode", .string, stage: .references), [.templateVM]),
        (PropertySpec("audiovm", .qubeRef, stage: .references), P),
        (PropertySpec("auto_cleanup", .bool), [.dispVM]),
        (PropertySpec("autostart", .bool), P),
        (PropertySpec("backup_timestamp", .int), P),
        (PropertySpec("bootmode", .string, stage: .references), P),
        (PropertySpec("debug", .bool), P),
        (PropertySpec("default_dispvm", .qubeRef, stage: .references), PA),
        (PropertySpec("default_user", .defaultUser), P),
        (PropertySpec("devices_denied", .devicesDenied), PA),
        (PropertySpec("dispid", .int, writeOnce: true), [.dispVM]),
        (PropertySpec("guivm", .qubeRef, stage: .references), P),
        (PropertySpec("include_in_backups", .bool), PAR),
        (PropertySpec("installed_by_rpm", .bool), P),
        (PropertySpec("ip", .ipv4), P),
        (PropertySpec("ip6", .ipv6), P),
        (PropertySpec("kernel", .kernel), P),
        (PropertySpec("kernelopts", .kernelopts, stage: .references), P),
        (PropertySpec("keyboard_layout", .keyboardLayout), PA),
        (PropertySpec("label", .label), PAR),
        (PropertySpec("mac", .mac), P),
        (PropertySpec("management_dispvm", .qubeRef, stage: .references), P),
        (PropertySpec("maxmem", .nonNegativeInt), P),
        (PropertySpec("maxmem", .readOnly), A),
        (PropertySpec("memory", .positiveInt), P),
        (PropertySpec("name", .string, writeOnce: true), PR),
        (PropertySpec("name", .readOnly), A),
        (PropertySpec("netvm", .qubeRef, stage: .references), P),
        (PropertySpec("provides_network", .bool), P),
        (PropertySpec("qid", .qid, writeOnce: true), PR),
        (PropertySpec("qid", .readOnly), A),
        (PropertySpec("qrexec_timeout", .positiveInt), P),
        (PropertySpec("relayvm", .qubeRef, stage: .references), R),
        (PropertySpec("remote_name", .string), R),
        (PropertySpec("shutdown_timeout", .positiveInt), P),
        (PropertySpec("stubdom_mem", .positiveInt), P),
        (PropertySpec("template", .qubeRef, stage: .references), [.appVM, .dispVM]),
        (PropertySpec("template_for_dispvms", .bool), [.appVM, .standaloneVM]),
        (PropertySpec("transport_rpc", .string), R),
        (PropertySpec("updateable", .readOnly), PA),
        (PropertySpec("uuid", .uuid, writeOnce: true), PR),
        (PropertySpec("uuid", .readOnly), A),
        (PropertySpec("vcpus", .positiveInt), P),
        (PropertySpec("virt_mode", .virtMode), P),
    ]

    /// Computed properties of the QubesVM classes (never saved).
    static let computed = [
        "dns", "gateway", "gateway6", "icon", "klass", "start_time", "stubdom_uuid", "stubdom_xid",
        "visible_gateway", "visible_gateway6", "visible_ip", "visible_ip6", "visible_netmask", "xid",
    ]

    /// Name → spec per class, at the class's `slot` (an array, as the
    /// class is known for every lookup and needs no hashing).
    private static let byClass: [[String: PropertySpec]] = {
        var result = [[String: PropertySpec]](repeating: [:], count: VMClass.allCases.count)
        for (spec, classes) in table {
            for vmClass in classes { result[slot(vmClass)][spec.name] = spec }
        }
        return result
    }()

    private static func slot(_ vmClass: VMClass) -> Int {
        switch vmClass {
        case .adminVM: 0
        case .appVM: 1
        case .templateVM: 2
        case .dispVM: 3
        case .standaloneVM: 4
        case .remoteVM: 5
        }
    }

    /// The global (`Qubes`) properties, all loaded at stage 3.
    public static let global: [String: PropertySpec] = {
        let specs: [PropertySpec] = [
            PropertySpec("check_updates_vm", .bool, stage: .global),
            PropertySpec("clockvm", .qubeRef, stage: .global),
            PropertySpec("default_audiovm", .qubeRef, stage: .global),
            PropertySpec("default_dispvm", .qubeRef, stage: .global),
            PropertySpec("default_guivm", .qubeRef, stage: .global),
            PropertySpec("default_kernel", .string, stage: .global),
            PropertySpec("default_netvm", .qubeRef, stage: .global),
            PropertySpec("default_pool", .pool, stage: .global),
            PropertySpec("default_pool_kernel", .pool, stage: .global),
            PropertySpec("default_pool_private", .pool, stage: .global),
            PropertySpec("default_pool_root", .pool, stage: .global),
            PropertySpec("default_pool_volatile", .pool, stage: .global),
            PropertySpec("default_qrexec_timeout", .int, stage: .global),
            PropertySpec("default_shutdown_timeout", .int, stage: .global),
            PropertySpec("default_template", .qubeRef, stage: .global),
            PropertySpec("management_dispvm", .qubeRef, stage: .global),
            PropertySpec("maxmem", .readOnly, stage: .global),
            PropertySpec("no_cpus", .readOnly, stage: .global),
            PropertySpec("stats_interval", .int, stage: .global),
            PropertySpec("updatevm", .qubeRef, stage: .global),
        ]
        return Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0) })
    }()

    /// The property `name` of `vmClass`, if the class has it.
    public static func property(_ name: String, of vmClass: VMClass) -> PropertySpec? {
        byClass[slot(vmClass)][name]
    }

    /// Every property of `vmClass`.
    public static func properties(of vmClass: VMClass) -> [String: PropertySpec] {
        byClass[slot(vmClass)]
    }

    /// Save order: by stage, then name (ASCII).
    static func saveOrder(_ lhs: PropertySpec, _ rhs: PropertySpec) -> Bool {
        lhs.stage != rhs.stage ? lhs.stage < rhs.stage : lhs.name.precedesByCodePoint(rhs.name)
    }

    /// Sorts property names of `vmClass` (`nil`: global) into save order:
    /// by load stage, then name.
    public static func sortedForSave(_ names: some Sequence<String>, of vmClass: VMClass?) -> [String] {
        let specs = names.map { name in
            (vmClass.flatMap { property(name, of: $0) } ?? global[name]) ?? PropertySpec(name, .string)
        }
        return specs.sorted(by: saveOrder).map(\.name)
    }

    /// Names of properties that hold a qube reference in `vmClass`.
    static func isQubeReference(_ name: String, of vmClass: VMClass) -> Bool {
        property(name, of: vmClass)?.kind == .qubeRef
    }
}
