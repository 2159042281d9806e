import OrderedCollections
import SystemLayer

/// Options for loading a store.
public struct LoadOptions: Sendable {
    /// XML limits; the main store uses `.store`, untrusted input `.untrusted`.
    public var limits: XMLReader.Limits
    /// Source of random version-4 uuids (for a last `<domain>` without uuid).
    public var randomUUID: @Sendable () -> String
    /// Whether the host has qubesd's callback configuration
    /// (`PoolDriver.callbackConfigurationPath`); without it qubesd fails to
    /// load a store with a callback pool.
    public var hasCallbackConfiguration: Bool

    public init(
        limits: XMLReader.Limits = .store, randomUUID: @escaping @Sendable () -> String = { UUIDSource.random() },
        hasCallbackConfiguration: Bool = LoadOptions.hostHasCallbackConfiguration()
    ) {
        self.limits = limits
        self.randomUUID = randomUUID
        self.hasCallbackConfiguration = hasCallbackConfiguration
    }

    /// Whether this machine has qubesd's callback configuration file.
    public static func hostHasCallbackConfiguration() -> Bool {
        (try? SystemFileSystem().info(of: PoolDriver.callbackConfigurationPath, followSymlink: true)) != nil
    }
}

/// Something qubesd logs while loading (a dropped pool or device, a cut
/// netvm loop, a removed preload entry).
public struct LoadNote: Sendable, Hashable, CustomStringConvertible {
    public enum Level: String, Sendable, Hashable {
        case info = "INFO", error = "ERROR", critical = "CRITICAL"
    }

    public var level: Level
    public var finding: StoreFinding

    public var description: String { "\(level.rawValue) \(finding)" }
}

/// The result of loading: the store and what the load changed or dropped.
public struct LoadedStore: Sendable {
    public var store: Store
    /// What qubesd would log while loading this file.
    public var notes: [LoadNote]
    /// The document's root element: `qubes` for every format qubesd writes.
    public var rootElement: String
    /// Whether the root has child elements but none qubesd reads (labels,
    /// pools, properties, domains): the R1-R3 formats, which qubesd runs as an
    /// empty system with only dom0.
    public var rootReadsNothing: Bool
    /// The parsed input, so a check compares it with the save without parsing it again.
    var document: XMLDocument?
}

extension Store {
    /// Loads a qubes.xml document with qubesd's semantics (docs/qubes-xml.md, "Loading").
    /// - Throws: `StoreError` whose kind is the exception class qubesd raises.
    public static func load(xml bytes: [UInt8], options: LoadOptions = LoadOptions()) throws -> LoadedStore {
        let document = try XMLReader.parse(bytes, limits: options.limits)
        var loader = Loader(document: document, options: options)
        try loader.load()
        let children = document.root.children
        let readsNothing = !children.isEmpty && !children.contains { ["labels", "pools", "properties", "domains"].contains($0.name) }
        return LoadedStore(
            store: loader.store, notes: loader.notes, rootElement: document.root.name, rootReadsNothing: readsNothing, document: document)
    }
}

/// A `<property>` element as read: name and value (`ref` attribute, else text).
struct RawProperty {
    var name: String?
    var value: String?
    var offset: Int
    /// The property of the qube's class, once checked.
    var spec: PropertySpec? = nil
}

struct Loader {
    let document: XMLDocument
    let options: LoadOptions
    var store = Store()
    var notes: [LoadNote] = []

    /// Per qid: the qube's `<domain>` element and its property elements.
    var elements: [Int: XMLNode] = [:]
    var rawProperties: [Int: [RawProperty]] = [:]
    var volumeConfigs: [Int: VolumeConfigs] = [:]
    var rawGlobals: [RawProperty] = []
    /// Qids in collection order, fixed once every qube is added.
    var order: [Int] = []
    /// A qube added without uuid: adding another one then fails, as in qubesd.
    var qubeWithoutUUID: String?

    init(document: XMLDocument, options: LoadOptions) {
        self.document = document
        self.options = options
    }

    mutating func note(_ level: LoadNote.Level, _ message: String, qube: String? = nil, field: String? = nil, value: String? = nil) {
        notes.append(LoadNote(level: level, finding: StoreFinding(qube: qube, field: field, value: value, message: message)))
    }

    func located(_ error: StoreError, _ offset: Int) -> StoreError {
        var copy = error
        if copy.location == nil { copy.location = document.location(of: offset) }
        return copy
    }

    /// Children of every container `path[0]` of the root, then `path[1]`.
    static func elements(_ root: XMLNode, _ container: String, _ item: String) -> [XMLNode] {
        var result: [XMLNode] = []
        forEachElement(root, container, item) { result.append($0) }
        return result
    }

    /// Calls `body` with the children `item` of every container `container`
    /// of `root`, in document order, without collecting them.
    static func forEachElement(
        _ root: XMLNode, _ container: String, _ item: String, _ body: (XMLNode) throws -> Void
    ) rethrows {
        for child in root.children where child.name == container {
            for element in child.children where element.name == item { try body(element) }
        }
    }

    static func properties(of node: XMLNode) -> [RawProperty] {
        var properties: [RawProperty] = []
        for child in node.children where child.name == "properties" {
            properties.reserveCapacity(properties.count + child.children.count)
            for element in child.children where element.name == "property" {
                let reference = element.attribute("ref")
                let value = (reference?.isEmpty == false) ? reference : element.text
                properties.append(RawProperty(name: element.attribute("name"), value: value, offset: element.offset))
            }
        }
        return properties
    }

    mutating func load() throws {
        let root = document.root
        try loadLabels(root)
        try loadPools(root)
        for element in Self.elements(root, "domains", "domain") {
            try loadDomainStage2(element)
        }
        if store.adminVM == nil {
            try checkUUIDsBeforeInsert()
            try store.insert(Domain(vmClass: .adminVM, qid: 0, name: "dom0", uuid: Self.adminUUID))
        }
        order = store.orderedQIDs
        rawGlobals = Self.properties(of: root)
        migrateDefaultFirewallNetVM()
        try migrateDispVMReferences()
        try loadGlobalProperties()
        for qid in order {
            try loadDomainStage4(qid)
        }
        if store.globalProperties["default_template"] == nil {
            note(.critical, "Required property 'default_template' not set on Qubes", field: "default_template")
        }
        let volumeBuilder = VolumeBuilder(store: store, configs: volumeConfigs)
        for qid in order {
            try domainLoad(qid, volumeBuilder: volumeBuilder)
        }
    }

    static let adminUUID = "00000000-0000-0000-0000-000000000000"

    // MARK: - Labels and pools

    mutating func loadLabels(_ root: XMLNode) throws {
        var greyMigrated = false
        for element in Self.elements(root, "labels", "label") {
            var color = element.attribute("color")
            if color == "0x555753" && !greyMigrated {
                color = "0x555555"
                greyMigrated = true
            }
            guard let id = element.attribute("id") else {
                throw located(StoreError(.attributeError, "'NoneType' object has no attribute 'split'", field: "label id"), element.offset)
            }
            guard let dash = id.firstIndex(of: "-") else {
                throw located(StoreError(.indexError, "list index out of range (label id without '-')", field: "label id", value: id), element.offset)
            }
            let indexText = String(id[id.index(after: dash)...])
            guard let canonical = ValueParsers.pythonInt(indexText), let index = Int(canonical) else {
                throw located(
                    StoreError(.valueError, "invalid literal for int() with base 10: '\(indexText)'", field: "label id", value: id),
                    element.offset)
            }
            guard let name = element.text else {
                throw located(
                    StoreError(.typeError, "can only concatenate str (not \"NoneType\") to str (label without name)", field: "label", value: id),
                    element.offset)
            }
            store.labels[index] = Label(index: index, color: color, name: name)
        }
    }

    mutating func loadPools(_ root: XMLNode) throws {
        for element in Self.elements(root, "pools", "pool") {
            guard let name = element.attribute("name"), !name.isEmpty else {
                throw located(StoreError(.assertionError, "Pool name 'None' is invalid", field: "pool"), element.offset)
            }
            guard let driver = element.attribute("driver") else {
                note(.error, "No driver specified for pool \(name)", field: "pools.\(name)", value: name)
                continue
            }
            guard let poolDriver = PoolDriver(rawValue: driver) else {
                note(.error, "No driver \(driver) for pool \(name)", field: "pools.\(name)", value: driver)
                continue
            }
            do {
                store.pools[name] = try poolDriver.makePool(
                    name: name, attributes: Array(element.attributes), hasCallbackConfiguration: options.hasCallbackConfiguration)
            } catch let error as StoreError where error.kind.isQubesException {
                // qubesd logs a QubesException of a pool driver and goes on without the pool.
                note(.error, error.message, field: "pools.\(name)", value: error.value)
            } catch let error as StoreError {
                throw located(error, element.offset)
            }
        }
    }

    // MARK: - Stage 2: qubes

    mutating func loadDomainStage2(_ element: XMLNode) throws {
        guard let className = element.attribute("class"), let vmClass = VMClass(rawValue: className) else {
            let shown = element.attribute("class").map { "'\($0)'" } ?? "None"
            throw located(StoreError(.qubesException, "no such VM class: \(shown)", field: "class", value: element.attribute("class")), element.offset)
        }
        var properties = Self.properties(of: element)
        migrateLegacyProperties(&properties, vmClass: vmClass)
        let qubeName = properties.last { $0.name == "name" }?.value
        for index in properties.indices {
            let property = properties[index]
            guard let name = property.name, let spec = Schema.property(name, of: vmClass) else {
                let shown = property.name.map { "'\($0)'" } ?? "None"
                throw located(
                    StoreError(.typeError, "property \(shown) not applicable to '\(className)'", qube: qubeName, field: property.name),
                    property.offset)
            }
            properties[index].spec = spec
        }
        let configs = try VolumeConfigs.read(element, vmClass: vmClass, qube: qubeName)

        var domain = Domain(vmClass: vmClass, qid: 0, name: "dom0", uuid: "")
        // Write-once properties already set.
        var seen = Set<String>()
        var hasQID = vmClass == .adminVM
        var hasName = vmClass == .adminVM
        if vmClass == .adminVM { domain.uuid = Self.adminUUID }
        for property in properties {
            guard let name = property.name, let spec = property.spec, spec.stage == .qube else { continue }
            if spec.writeOnce {
                guard seen.insert(name).inserted else {
                    throw located(
                        StoreError(.attributeError, "property '\(name)' is write-once and already set", qube: qubeName, field: name, value: property.value),
                        property.offset)
                }
            }
            do {
                let text = try PropertySetter.normalize(property.value, spec: spec, vmClass: vmClass, labels: store)
                switch name {
                case "name":
                    domain.name = text
                    hasName = true
                case "qid":
                    domain.qid = Int(text) ?? 0
                    hasQID = true
                case "uuid":
                    domain.uuid = text
                default:
                    domain.properties[name] = text
                    if property.value == nil && (spec.kind == .string || spec.kind == .defaultUser) {
                        domain.noneProperties.insert(name)
                    } else {
                        domain.noneProperties.remove(name)
                    }
                    if name == "virt_mode" && text == "pvh" && domain.devices["pci"] == nil {
                        domain.devices["pci"] = []
                    }
                }
            } catch var error as StoreError {
                error.qube = error.qube ?? qubeName
                error.field = error.field ?? name
                if error.value == nil { error.value = property.value }
                throw located(error, property.offset)
            }
        }
        guard hasQID else {
            throw located(StoreError(.attributeError, "property 'qid' have no default", qube: qubeName, field: "qid"), element.offset)
        }
        guard hasName else {
            throw located(StoreError(.attributeError, "property 'name' have no default", field: "name"), element.offset)
        }
        if let other = store[qid: domain.qid] {
            let kind: StoreError.Kind = other.vmClass == .adminVM ? .valueError : .qubesException
            let message =
                other.vmClass == .adminVM
                ? "This collection already holds VM that has qid=\(domain.qid) (dom0)"
                : "VMM operations disabled in offline mode (qid \(domain.qid) is already used by '\(other.name)')"
            throw located(StoreError(kind, message, qube: domain.name, field: "qid", value: String(domain.qid)), element.offset)
        }
        do {
            try checkUUIDsBeforeInsert()
            try store.insert(domain)
        } catch let error as StoreError {
            throw located(error, element.offset)
        }
        if domain.uuid.isEmpty { qubeWithoutUUID = domain.name }
        elements[domain.qid] = element
        rawProperties[domain.qid] = properties
        volumeConfigs[domain.qid] = configs
    }

    /// qubesd's uniqueness test reads the uuid of every qube added so far.
    func checkUUIDsBeforeInsert() throws {
        if let name = qubeWithoutUUID {
            throw StoreError(.attributeError, "property 'uuid' have no default", qube: name, field: "uuid")
        }
    }

    /// Legacy `hvm` → `virt_mode`, AppVM `dispvm_allowed` → `template_for_dispvms`.
    func migrateLegacyProperties(_ properties: inout [RawProperty], vmClass: VMClass) {
        if vmClass == .appVM, let index = properties.firstIndex(where: { $0.name == "dispvm_allowed" }) {
            properties[index].name = "template_for_dispvms"
        }
        if vmClass.isQubesVM, let index = properties.firstIndex(where: { $0.name == "hvm" }) {
            let hvm = properties.remove(at: index)
            let isHVM = hvm.value.flatMap(ValueParsers.bool) ?? false
            properties.append(RawProperty(name: "virt_mode", value: isHVM ? "hvm" : "pv", offset: hvm.offset))
        }
    }
}
