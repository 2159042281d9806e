import LQCommon
import QubesStore
import Synchronization
import SystemLayer

/// The random choices qubesd makes (uuid4 of new qubes, dispids), injectable
/// so that runs can be compared byte for byte.
public struct RandomSource: Sendable {
    public var uuid: @Sendable () -> String
    public var dispid: @Sendable () -> Int

    public init(uuid: @escaping @Sendable () -> String, dispid: @escaping @Sendable () -> Int) {
        self.uuid = uuid
        self.dispid = dispid
    }

    /// The operating system's generator, as qubesd uses.
    public static let system = RandomSource(uuid: { UUIDSource.random() }, dispid: { Int.random(in: 0..<10000) })

    /// A reproducible sequence (SplitMix64) for tests and demos.
    public static func seeded(_ seed: UInt64) -> RandomSource {
        let generator = Mutex(SplitMix64(seed: seed))
        @Sendable func next() -> UInt64 { generator.withLock { $0.next() } }
        return RandomSource(
            uuid: { generator.withLock { UUIDSource.random(using: &$0) } },
            dispid: { Int(next() % 10000) })
    }
}

/// A `Backend` that edits a qubes.xml file the way an offline qubesd would:
/// the same checks as the Admin API, under qubesd's lock, saved atomically —
/// once per call, or once per `batch`.
public final class OfflineBackend: Backend {
    public let file: StoreFile
    public let random: RandomSource
    private var session: Store?
    private var sessionChanged = false
    private var cache: (stamp: FileStamp, store: Store)?

    public init(path: String, fileSystem: any FileSystem = SystemFileSystem(), random: RandomSource = .system) {
        self.file = StoreFile(path: path, fileSystem: fileSystem)
        self.random = random
    }

    // MARK: Store access

    private func load(_ bytes: [UInt8]) throws -> Store {
        do {
            return try Store.load(xml: bytes).store
        } catch let error as StoreError {
            throw AdminError.qubes(className: error.kind.rawValue, message: error.inFile(file.path).description)
        }
    }

    private func storeError<Result>(_ call: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as StoreError {
            throw AdminError(error, call: call)
        }
    }

    private func read<Result>(_ call: String, _ body: (Store) throws -> Result) throws -> Result {
        if let session { return try storeError(call) { try body(session) } }
        let stamp = try storeError(call) { try file.stamp() }
        if let cache, cache.stamp == stamp { return try storeError(call) { try body(cache.store) } }
        let (bytes, readStamp) = try storeError(call) { try file.read() }
        let store = try load(bytes)
        cache = (readStamp, store)
        return try storeError(call) { try body(store) }
    }

    private func change(_ call: String, _ body: (inout Store) throws -> Void) throws {
        if session != nil {
            try storeError(call) { try body(&session!) }
            sessionChanged = true
            return
        }
        // The store read last is reused when the file under the lock is still that one.
        let cached = cache
        cache = nil
        _ = try storeError(call) {
            try file.modify { bytes, stamp in
                var store = try cached.flatMap { $0.stamp == stamp ? $0.store : nil } ?? load(bytes)
                try body(&store)
                return try XMLWriter.write(store)
            }
        }
    }

    public func batch<Result>(_ body: () throws -> Result) throws -> Result {
        if session != nil { return try body() }
        var result: Result?
        _ = try storeError("batch") {
            try file.modify { bytes, _ in
                session = try load(bytes)
                sessionChanged = false
                defer { session = nil }
                result = try body()
                return sessionChanged ? try XMLWriter.write(session!) : nil
            }
        }
        cache = nil
        return result!
    }

    private func qube(_ name: String, in store: Store) throws -> Domain { try store.existing(name) }

    // MARK: Qubes

    public func qubes() throws -> [QubeSummary] {
        try read("admin.vm.List") { store in
            store.domains.map {
                QubeSummary(name: $0.name, vmClass: $0.vmClass, state: $0.vmClass == .adminVM ? .running : .halted, uuid: $0.uuid)
            }
        }
    }

    public func create(_ qube: Store.NewQube) throws {
        let call = "admin.vm.Create.\(qube.vmClass.rawValue)"
        try change(call) { store in
            guard store.label(named: qube.label) != nil || (try? store.labelIndex(qube.label)) != nil else {
                throw StoreError(.protocolError, "Creation requested without key: label", qube: qube.name, value: qube.label)
            }
            try store.createQube(qube, uuid: random.uuid(), dispid: random.dispid)
        }
    }

    public func remove(_ qube: String) throws { try change("admin.vm.Remove") { try $0.removeQube(qube) } }

    // MARK: Properties

    public func propertyNames(of qube: String?) throws -> [String] {
        try read("property.List") { store in
            guard let qube else { return Schema.sortedForSave(Schema.global.keys, of: nil) }
            let domain = try store.existing(qube)
            return Schema.sortedForSave(Schema.properties(of: domain.vmClass).keys, of: domain.vmClass)
        }
    }

    public func property(_ name: String, of qube: String?) throws -> PropertyValue {
        try read("property.Get+\(name)") { store in try Self.value(name, of: qube, in: store, explicitOnly: false)! }
    }

    public func allProperties(of qube: String?) throws -> [(name: String, value: PropertyValue)] {
        try read("property.GetAll") { store in
            let vmClass = try qube.map { try store.existing($0).vmClass }
            let names = Schema.sortedForSave(vmClass.map { Array(Schema.properties(of: $0).keys) } ?? Array(Schema.global.keys), of: vmClass)
            return try names.map { ($0, try Self.value($0, of: qube, in: store, explicitOnly: false)!) }
        }
    }

    public func propertyDefault(_ name: String, of qube: String?) throws -> PropertyValue? {
        try read("property.GetDefault+\(name)") { store in
            var withoutValue = store
            if let qube { withoutValue.update(qube) { $0.properties[name] = nil } } else { withoutValue.globalProperties[name] = nil }
            return try Self.value(name, of: qube, in: withoutValue, explicitOnly: true)
        }
    }

    /// The Get answer of a property; with `explicitOnly`, `nil` for a
    /// property without default.
    static func value(_ name: String, of qube: String?, in store: Store, explicitOnly: Bool) throws -> PropertyValue? {
        let domain = try qube.map(store.existing)
        let spec = domain.map { Schema.property(name, of: $0.vmClass) } ?? Schema.global[name]
        guard let spec else {
            throw StoreError(.qubesNoSuchPropertyError, "Invalid property '\(name)' of \(qube ?? "dom0")", qube: qube, field: name)
        }
        let type: String
        switch spec.kind {
        case .qubeRef: type = "vm"
        case .bool: type = "bool"
        case .int, .positiveInt, .nonNegativeInt, .qid: type = "int"
        case .label: type = "label"
        default: type = name == "maxmem" || name == "no_cpus" || name == "xid" || name == "stubdom_xid" ? "int" : "str"
        }
        let resolver = EffectiveProperties(store: store)
        let explicit = domain.map { $0.explicitProperties[name] } ?? store.globalProperties[name]
        if let explicit, spec.kind != .readOnly {
            return PropertyValue(type: type, isDefault: false, value: explicit)
        }
        let result = domain.map { resolver.value(name, of: $0) } ?? resolver.global()[name]!
        switch result {
        case .success(let json):
            return PropertyValue(type: type, isDefault: true, value: json.plainText)
        case .failure(let error) where error.kind == .attributeError && error.message.hasSuffix("have no default"):
            if explicitOnly { return nil }
            return PropertyValue(type: type, isDefault: true, value: "")
        case .failure(let error):
            throw error
        }
    }

    public func setProperty(_ name: String, of qube: String?, to value: String) throws {
        try change("property.Set+\(name)") { try $0.setProperty(name, of: qube, to: value) }
    }

    public func resetProperty(_ name: String, of qube: String?) throws {
        try change("property.Reset+\(name)") { try $0.resetProperty(name, of: qube) }
    }

    // MARK: Features, tags

    public func features(of qube: String) throws -> [String] {
        try read("admin.vm.feature.List") { try $0.existing(qube).features.keys.map(\.value) }
    }

    public func feature(_ name: String, of qube: String) throws -> String {
        try read("admin.vm.feature.Get+\(name)") { store in
            guard let value = try store.existing(qube).features[ExactString(name)] else {
                throw StoreError(.qubesFeatureNotFoundError, "Feature not set for domain \(qube): \(name)")
            }
            return value
        }
    }

    public func setFeature(_ name: String, to value: String, of qube: String) throws {
        try change("admin.vm.feature.Set+\(name)") { try $0.setFeature(name, to: value, of: qube) }
    }

    public func removeFeature(_ name: String, of qube: String) throws {
        try change("admin.vm.feature.Remove+\(name)") { try $0.removeFeature(name, of: qube) }
    }

    public func tags(of qube: String) throws -> [String] {
        try read("admin.vm.tag.List") { try $0.existing(qube).tags.sorted().map(\.value) }
    }

    public func hasTag(_ tag: String, on qube: String) throws -> Bool {
        try read("admin.vm.tag.Get+\(tag)") { store in
            guard AdminAPIRules.isValidTag(tag) else { throw StoreError(.qubesInvalidTagError, "disallowed characters") }
            return try store.existing(qube).tags.contains(ExactString(tag))
        }
    }

    public func addTag(_ tag: String, to qube: String) throws {
        try change("admin.vm.tag.Set+\(tag)") { try $0.addTag(tag, to: qube) }
    }

    public func removeTag(_ tag: String, from qube: String) throws {
        try change("admin.vm.tag.Remove+\(tag)") { try $0.removeTag(tag, from: qube) }
    }

    // MARK: Labels, pools, volumes

    public func labels() throws -> [String] { try read("admin.label.List") { $0.sortedLabels.map(\.name) } }

    public func labelColor(_ label: String) throws -> String {
        try read("admin.label.Get+\(label)") { store in
            let index = try store.labelIndex(label)
            return store.labels[index]?.color ?? ""
        }
    }

    public func pools() throws -> [String] { try read("admin.pool.List") { Array($0.pools.keys) } }

    public func poolInfo(_ pool: String) throws -> [(key: String, value: String)] {
        try read("admin.pool.Info+\(pool)") { store in
            guard let info = store.pools[pool] else { throw StoreError(.permissionDenied, "Argument not in 'pools'") }
            return info.attributes.sorted { $0.name < $1.name }.map { ($0.name, $0.value) }
        }
    }

    public func volumes(of qube: String) throws -> [String] {
        try read("admin.vm.volume.List") { try $0.existing(qube).volumes.map(\.name) }
    }

    public func volumeInfo(_ volume: String, of qube: String) throws -> [(key: String, value: String)] {
        try read("admin.vm.volume.Info+\(volume)") { store in
            guard let info = try store.existing(qube).volumes.first(where: { $0.name == volume }) else {
                throw StoreError(.permissionDenied, "Argument not in '\(qube) volumes'")
            }
            let directory = store.pools[info.pool]?[attribute: "dir_path"] ?? ""
            let snapshot = Volume.isTrue(info.snapOnStart)
            return [
                ("pool", info.pool), ("vid", info.vid), ("size", info.size ?? "0"), ("usage", "0"), ("rw", info.rw),
                ("source", info.source ?? ""), ("path", directory + "/" + info.vid + (snapshot ? "-dirty.img" : ".img")),
                ("save_on_stop", info.saveOnStop), ("snap_on_start", info.snapOnStart),
                ("revisions_to_keep", info.revisionsToKeep), ("ephemeral", info.ephemeral ?? "False"),
            ]
        }
    }

    public func setVolumeReadWrite(_ volume: String, of qube: String, to readWrite: Bool) throws {
        try change("admin.vm.volume.Set.rw+\(volume)") { store in
            guard let index = try store.existing(qube).volumes.firstIndex(where: { $0.name == volume }) else {
                throw StoreError(.permissionDenied, "Argument not in '\(qube) volumes'")
            }
            store.update(qube) { $0.volumes[index].rw = readWrite ? "True" : "False" }
        }
    }

    /// The stored size changes; as qubesd's storage pools, a read-only volume or a smaller size is refused.
    public func resizeVolume(_ volume: String, of qube: String, to size: Int64) throws {
        try change("admin.vm.volume.Resize+\(volume)") { store in
            guard let index = try store.existing(qube).volumes.firstIndex(where: { $0.name == volume }) else {
                throw StoreError(.permissionDenied, "Argument not in '\(qube) volumes'")
            }
            let info = try store.existing(qube).volumes[index]
            guard Volume.isTrue(info.rw) else { throw StoreError(.storagePoolException, "Cannot resize: \(info.vid) is read-only", qube: qube) }
            let current = info.size.flatMap { Int64($0) } ?? 0
            guard size >= current else {
                throw StoreError(.storagePoolException, "For your own safety, shrinking of \(info.vid) is disabled (\(size) < \(current))", qube: qube)
            }
            store.update(qube) { $0.volumes[index].size = String(size) }
        }
    }

    /// Offline there is no volume data to copy: both volumes must exist.
    public func cloneVolume(_ volume: String, from source: String, to target: String) throws {
        try read("admin.vm.volume.CloneFrom+\(volume)") { store in
            for qube in [source, target] where !(try store.existing(qube).volumes.contains { $0.name == volume }) {
                throw StoreError(.permissionDenied, "Argument not in '\(qube) volumes'")
            }
        }
    }

    // MARK: Devices

    /// Offline there is no hardware to list: qubesd answers dom0 with the VMM error, other qubes with nothing.
    public func availableDevices(of backend: String, deviceClass: String) throws
        -> [(port: String, identity: String, properties: [(key: String, value: String)])]
    {
        try read("admin.vm.device.\(deviceClass).Available") { store in
            if try store.existing(backend).vmClass == .adminVM {
                throw StoreError(.qubesException, "VMM operations disabled in offline mode")
            }
            return []
        }
    }

    public func assignedDevices(of qube: String, deviceClass: String) throws -> [DeviceAssignment] {
        try read("admin.vm.device.\(deviceClass).Assigned") { try $0.existing(qube).devices[deviceClass] ?? [] }
    }

    public func assign(_ device: DeviceAssignment, deviceClass: String, to qube: String) throws {
        try change("admin.vm.device.\(deviceClass).Assign") { try $0.assignDevice(device, deviceClass: deviceClass, to: qube) }
    }

    public func unassign(_ device: DeviceAssignment, deviceClass: String, from qube: String) throws {
        try change("admin.vm.device.\(deviceClass).Unassign") { try $0.unassignDevice(device, deviceClass: deviceClass, from: qube) }
    }

    // MARK: Power (offline qubesd's answers)

    public func powerState(of qube: String) throws -> String {
        try read("admin.vm.CurrentState") { try $0.existing(qube).vmClass == .adminVM ? "Running" : "Halted" }
    }

    public func start(_ qube: String) throws {
        try read("admin.vm.Start") { store in
            let domain = try store.existing(qube)
            if domain.vmClass == .adminVM { throw StoreError(.qubesVMNotHaltedError, "Cannot start Dom0 fake domain!") }
            if let rationale = domain.features["prohibit-start"], !rationale.isEmpty {
                throw StoreError(.qubesException, "Qube start is prohibited. Rationale: \(rationale)")
            }
            throw StoreError(.qubesException, "VMM operations disabled in offline mode")
        }
    }

    public func shutdown(_ qube: String, force: Bool, wait: Bool) throws {
        try read("admin.vm.Shutdown") { store in
            _ = try store.existing(qube)
            throw StoreError(.qubesVMNotStartedError, "Domain is powered off: '\(qube)'")
        }
    }

    public func kill(_ qube: String) throws { try shutdown(qube, force: true, wait: false) }
}

extension JSONValue {
    /// The text form qubesd's Get uses (none as empty).
    var plainText: String {
        switch self {
        case .null: ""
        case .bool(let value): value ? "True" : "False"
        case .integer(let text), .string(let text): text
        case .array(let items): items.map(\.plainText).joined(separator: " ")
        case .members: ""
        }
    }
}
