import OrderedCollections

/// Options for loading a store.
public struct LoadOptions: Sendable {
    /// XML limits; the main store uses `.store`, untrusted input `.untrusted`.
    public var limits: XMLReader.Limits
    /// Source of random version-4 uuids (for a last `<domain>` without uuid).
    public var randomUUID: @Sendable () -> String

    public init(limits: XMLReader.Limits = .store, randomUUID: @escaping @Sendable () -> String = { UUIDSource.random() }) {
        self.limits = limits
        self.randomUUID = randomUUID
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
}

extension Store {
    /// Loads a qubes.xml document with qubesd's semantics (docs/qubes-xml.md, "Loading").
    /// - Throws: `StoreError` whose kind is the exception class qubesd raises.
    public static func load(xml bytes: [UInt8], options: LoadOptions = LoadOptions()) throws -> LoadedStore {
        let document = try XMLReader.parse(bytes, limits: options.limits)
        var loader = Loader(document: document, options: options)
        try loader.load()
        return LoadedStore(store: loader.store, notes: loader.notes)
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
                store.pools[name] = try poolDriver.makePool(name: name, attributes: Array(element.attributes))
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
            guard let name = property.name, let spec = property.spec, spec.stage == 2 else { continue }
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

    // MARK: - Migrations on the raw tree

    mutating func migrateDefaultFirewallNetVM() {
        guard let index = rawGlobals.firstIndex(where: { $0.name == "default_fw_netvm" }) else { return }
        let legacy = rawGlobals.remove(at: index)
        let defaultNetVM = rawGlobals.last { $0.name == "default_netvm" }?.value
        guard let target = legacy.value, store.contains(target), target != defaultNetVM else { return }
        for domain in order.compactMap({ store[qid: $0] }) where domain.vmClass.isQubesVM {
            let providesNetwork = domain.properties["provides_network"] == "True"
            let hasNetVM = rawProperties[domain.qid]?.contains { $0.name == "netvm" } ?? false
            if providesNetwork && !hasNetVM {
                rawProperties[domain.qid, default: []].append(RawProperty(name: "netvm", value: target, offset: 0))
            }
        }
    }

    /// `default_dispvm` / `management_dispvm` naming a qube that is not a
    /// disposable template become an explicit none; a missing qube fails.
    mutating func migrateDispVMReferences() throws {
        func migrate(_ properties: inout [RawProperty], qube: String?) throws {
            for index in properties.indices {
                guard let name = properties[index].name, name == "default_dispvm" || name == "management_dispvm",
                    let target = properties[index].value, !target.isEmpty
                else { continue }
                guard let domain = store[target] else {
                    throw located(StoreError(.keyError, "'\(target)'", qube: qube, field: name, value: target), properties[index].offset)
                }
                if domain.properties["template_for_dispvms"] != "True" {
                    properties[index].value = ""
                }
            }
        }
        var globals = rawGlobals
        try migrate(&globals, qube: nil)
        rawGlobals = globals
        for qid in order {
            guard var properties = rawProperties[qid] else { continue }
            try migrate(&properties, qube: store[qid: qid]?.name)
            rawProperties[qid] = properties
        }
    }

    // MARK: - Stage 3: global properties

    mutating func loadGlobalProperties() throws {
        for property in rawGlobals {
            guard let name = property.name, let spec = Schema.global[name] else { continue }
            do {
                if spec.kind == .qubeRef {
                    store.globalProperties[name] = try PropertySetter.reference(property.value, name: name, owner: nil, in: store)
                } else if spec.kind == .pool {
                    guard let pool = property.value, store.pools[pool] != nil else {
                        throw StoreError(.qubesPropertyValueError, "No such storage pool", field: name, value: property.value)
                    }
                    store.globalProperties[name] = pool
                } else {
                    store.globalProperties[name] = try PropertySetter.normalize(
                        property.value, spec: spec, vmClass: nil, labels: store)
                    if property.value == nil && spec.kind == .string {
                        store.noneGlobalProperties.insert(name)
                    } else {
                        store.noneGlobalProperties.remove(name)
                    }
                }
            } catch var error as StoreError {
                error.field = error.field ?? name
                if error.value == nil { error.value = property.value }
                throw located(error, property.offset)
            }
        }
    }

    // MARK: - Stage 4: references, features, tags, devices

    mutating func loadDomainStage4(_ qid: Int) throws {
        guard var domain = store[qid: qid] else { return }
        for property in rawProperties[qid] ?? [] {
            guard let name = property.name, let spec = property.spec ?? Schema.property(name, of: domain.vmClass), spec.stage == 4 else {
                continue
            }
            do {
                if spec.kind == .qubeRef {
                    domain.properties[name] = try PropertySetter.reference(property.value, name: name, owner: domain, in: store)
                } else {
                    domain.properties[name] = try PropertySetter.normalize(property.value, spec: spec, vmClass: domain.vmClass, labels: store)
                    if property.value == nil && spec.kind == .string {
                        domain.noneProperties.insert(name)
                    } else {
                        domain.noneProperties.remove(name)
                    }
                }
            } catch var error as StoreError {
                error.qube = error.qube ?? domain.name
                error.field = error.field ?? name
                if error.value == nil { error.value = property.value }
                throw located(error, property.offset)
            }
        }
        let element = elements[qid]
        if let element {
            try loadFeatures(element, into: &domain)
            try loadTags(element, into: &domain)
            try loadDevices(element, into: &domain)
        }
        store.update(domain.name) { $0 = domain }
    }

    func loadFeatures(_ element: XMLNode, into domain: inout Domain) throws {
        try Self.forEachElement(element, "features", "feature") { feature in
            guard let name = feature.attribute("name") else {
                throw located(
                    StoreError(.typeError, "can only concatenate str (not \"NoneType\") to str (feature without name)", qube: domain.name, field: "feature"),
                    feature.offset)
            }
            domain.features[ExactString(name)] = feature.text ?? ""
        }
    }

    func loadTags(_ element: XMLNode, into domain: inout Domain) throws {
        try Self.forEachElement(element, "tags", "tag") { tag in
            guard let name = tag.attribute("name") else {
                throw located(StoreError(.typeError, "'NoneType' object is not iterable (tag without name)", qube: domain.name, field: "tag"), tag.offset)
            }
            guard ValueParsers.isValidTag(name) else {
                throw located(StoreError(.valueError, "Invalid character in tag", qube: domain.name, field: "tag", value: name), tag.offset)
            }
            domain.tags.append(ExactString(name))
        }
    }

    /// Device classes qubesd loads (its device extensions); `usb` loads like
    /// `block` on a dom0 with the USB proxy installed.
    static let deviceClasses: Set<String> = ["pci", "block", "usb"]

    mutating func loadDevices(_ element: XMLNode, into domain: inout Domain) throws {
        for devices in element.children where devices.name == "devices" {
            let deviceClass = devices.attribute("class")
            for device in devices.children where device.name == "device" {
                var options: [(name: String?, value: String)] = []
                var identityOption: String?
                for option in device.children where option.name == "option" {
                    let name = option.attribute("name")
                    let value = option.text ?? "None"
                    if name == "identity" {
                        identityOption = value
                    } else {
                        options.append((name, value))
                    }
                }
                let mode: String
                if let required = device.attribute("required") {
                    guard let flag = ValueParsers.bool(required) else {
                        throw located(
                            StoreError(.qubesValueError, "Invalid literal for boolean property: '\(required)'", qube: domain.name, field: "device required", value: required),
                            device.offset)
                    }
                    mode = flag ? "required" : "auto-attach"
                } else {
                    mode = device.attribute("mode") ?? "required"
                }
                if mode == "manual" {
                    throw located(StoreError(.assertionError, "device mode 'manual' cannot be assigned", qube: domain.name, field: "device mode", value: mode), device.offset)
                }
                guard ["required", "auto-attach", "ask-to-attach"].contains(mode) else {
                    note(.error, "Unrecognized assignment mode, ignoring.", qube: domain.name, field: "devices.\(deviceClass ?? "None")", value: mode)
                    continue
                }
                let identity = identityOption ?? device.attribute("identity") ?? "*"
                let port = device.attribute("id") ?? "*"
                let backend = device.attribute("backend-domain")
                guard let deviceClass, Self.deviceClasses.contains(deviceClass), backend.map(store.contains) ?? true else {
                    note(
                        .info, "\(domain.name): Cannot find backend domain '\(backend ?? "None")' for device type \(deviceClass ?? "None") '\(port)'",
                        qube: domain.name, field: "devices.\(deviceClass ?? "None")", value: port)
                    continue
                }
                if deviceClass == "pci" && port != "*" && !Self.isPCIPort(port) {
                    throw located(StoreError(.valueError, "Invalid device identifier: '\(port)'", qube: domain.name, field: "device id", value: port), device.offset)
                }
                let assignment = DeviceAssignment(backendDomain: backend, port: port, identity: identity, mode: mode, options: options)
                var list = domain.devices[deviceClass] ?? []
                if list.contains(where: { $0.sameDevice(as: assignment) }) {
                    throw located(
                        StoreError(.assertionError, "device \(deviceClass) '\(port)' is assigned twice", qube: domain.name, field: "device", value: port),
                        device.offset)
                }
                list.append(assignment)
                domain.devices[deviceClass] = list
            }
        }
    }

    /// A PCI port id in path form (`00_14.3`, bridges joined by `-`) or BDF form (`0000:00:14.3`).
    static func isPCIPort(_ port: String) -> Bool {
        func isHex(_ text: Substring, _ count: Int) -> Bool {
            text.utf8.count == count && text.utf8.allSatisfy(ValueParsers.isHexDigit)
        }
        func isPathElement(_ text: Substring) -> Bool {
            let parts = text.split(separator: "_", omittingEmptySubsequences: false)
            guard parts.count == 2, isHex(parts[0], 2) else { return false }
            let deviceFunction = parts[1].split(separator: ".", omittingEmptySubsequences: false)
            return deviceFunction.count == 2 && isHex(deviceFunction[0], 2) && isHex(deviceFunction[1], 1)
        }
        if port.split(separator: "-", omittingEmptySubsequences: false).allSatisfy(isPathElement) { return true }
        var parts = port.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3 {
            guard isHex(parts[0], 4) else { return false }
            parts.removeFirst()
        }
        guard parts.count == 2, isHex(parts[0], 2) else { return false }
        let deviceFunction = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return deviceFunction.count == 2 && isHex(deviceFunction[0], 2) && isHex(deviceFunction[1], 1)
    }

    // MARK: - domain-load

    mutating func domainLoad(_ qid: Int, volumeBuilder: VolumeBuilder) throws {
        guard var domain = store[qid: qid] else { return }
        if domain.uuid.isEmpty {
            domain.uuid = options.randomUUID()
            note(.info, "qube had no uuid; a random one was assigned", qube: domain.name, field: "uuid", value: domain.uuid)
            store.update(domain.name) { $0.uuid = domain.uuid }
        }
        if domain.vmClass.hasVolumes {
            do {
                let volumes = try volumeBuilder.volumes(of: domain)
                store.update(domain.name) { $0.volumes = volumes }
            } catch var error as StoreError {
                error.qube = error.qube ?? domain.name
                throw located(error, elements[qid]?.offset ?? 0)
            }
        }
        breakNetVMLoop(domain.name)
        domain = store[qid: qid] ?? domain
        if domain.vmClass.hasTemplate && domain.properties["template"] == nil {
            throw located(StoreError(.attributeError, "property 'template' have no default", qube: domain.name, field: "template"), elements[qid]?.offset ?? 0)
        }
        if domain.properties["template_for_dispvms"] == "True" {
            removeAbsentPreloads(domain.name)
        }
        try maintainTags(domain.name)
    }

    mutating func breakNetVMLoop(_ name: String) {
        guard let netvm = store.effectiveNetVM(of: name) else { return }
        var message: String?
        if netvm == name {
            message = "vm '\(name)' network-connected to itself, breaking the connection"
        } else {
            var visited: Set<ExactString> = []
            var current: String? = netvm
            while let hop = current, visited.insert(ExactString(hop)).inserted {
                if hop == name {
                    message = "netvm loop detected on '\(name)', breaking the connection"
                    break
                }
                current = store.effectiveNetVM(of: hop)
            }
        }
        guard let message else { return }
        note(.error, message, qube: name, field: "netvm", value: netvm)
        store.update(name) { $0.properties["netvm"] = "" }
    }

    mutating func removeAbsentPreloads(_ name: String) {
        guard let value = store[name]?.features["preload-dispvm"] else { return }
        let entries = value.split(separator: " ").map(String.init)
        let absent = entries.filter { !store.contains($0) }
        guard !absent.isEmpty else { return }
        note(.info, "Removing absent preloaded qube(s): '\(absent.joined(separator: ", "))'", qube: name, field: "features.preload-dispvm", value: value)
        let kept = entries.filter { store.contains($0) }.joined(separator: " ")
        store.update(name) { $0.features["preload-dispvm"] = kept }
    }

    /// GUI and audio tags, and the `service.meminfo-writer` migration.
    mutating func maintainTags(_ name: String) throws {
        guard let domain = store[name], domain.vmClass.isQubesVM else { return }
        var updated = domain
        // Only a qube that changes is copied and written back.
        let tags = store.maintainedTags(of: domain)
        var changed = tags != domain.tags
        if changed { updated.tags = tags }
        if updated.features["service.meminfo-writer"] != nil,
            let meminfo = updated.features.removeValue(forKey: "service.meminfo-writer")
        {
            if meminfo.isEmpty { updated.properties["maxmem"] = "0" }
            note(.info, "feature service.meminfo-writer migrated", qube: name, field: "features.service.meminfo-writer", value: meminfo)
            changed = true
        }
        if changed { store.update(name) { $0 = updated } }
    }
}
