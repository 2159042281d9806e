/// One value of a qube's volume configuration before the volume is built.
enum VolumeConfigValue: Hashable {
    /// The exact texts `True` / `False`.
    case flag(Bool)
    case text(String)
    /// `source` with no value: take source, pool and size from the template.
    case fromTemplate

    var text: String {
        switch self {
        case .flag(let value): value ? "True" : "False"
        case .text(let value): value
        case .fromTemplate: "None"
        }
    }

    var isTrue: Bool {
        switch self {
        case .flag(let value): value
        case .text(let value): !value.isEmpty
        case .fromTemplate: false
        }
    }
}

/// One volume's configuration: known keys as fields, so building thousands
/// of volumes does no hashing.
struct VolumeConfig {
    var name: String
    var pool: VolumeConfigValue?
    var vid: VolumeConfigValue?
    var revisionsToKeep: VolumeConfigValue?
    var rw: VolumeConfigValue?
    var saveOnStop: VolumeConfigValue?
    var snapOnStart: VolumeConfigValue?
    var size: VolumeConfigValue?
    var source: VolumeConfigValue?
    var ephemeral: VolumeConfigValue?
    /// Attributes qubesd's volume class does not take (they fail the load).
    var unknownKeys: [String] = []

    init(name: String) { self.name = name }

    /// Sets the value of an XML attribute; the legacy `internal` is dropped.
    mutating func set(_ key: String, _ value: VolumeConfigValue) {
        // The length is compared first: a cheap test that skips most cases.
        switch (key.utf8.count, key) {
        case (4, "name"): break
        case (4, "pool"): pool = value
        case (3, "vid"): vid = value
        case (17, "revisions_to_keep"): revisionsToKeep = value
        case (2, "rw"): rw = value
        case (12, "save_on_stop"): saveOnStop = value
        case (13, "snap_on_start"): snapOnStart = value
        case (4, "size"): size = value
        case (6, "source"): source = value
        case (9, "ephemeral"): ephemeral = value
        case (8, "internal"): break
        default: if !unknownKeys.contains(key) { unknownKeys.append(key) }
        }
    }
}

/// A qube's volume configuration: class defaults updated by `<volume-config>`.
struct VolumeConfigs {
    /// Standard volumes first, then extra ones in file order.
    var volumes: [VolumeConfig]

    subscript(name: String) -> VolumeConfig? { volumes.first { $0.name == name } }

    /// The class defaults (docs/qubes-xml.md, "Volumes").
    static func defaults(for vmClass: VMClass) -> [VolumeConfig] { classDefaults[vmClass] ?? [] }

    private static let classDefaults = Dictionary(uniqueKeysWithValues: VMClass.allCases.map { ($0, makeDefaults(for: $0)) })

    private static func makeDefaults(for vmClass: VMClass) -> [VolumeConfig] {
        func volume(_ name: String, snapshot: Bool, persistent: Bool = false, rw: Bool = true, size: String? = nil) -> VolumeConfig {
            var config = VolumeConfig(name: name)
            config.snapOnStart = .flag(snapshot)
            config.saveOnStop = .flag(persistent)
            config.rw = .flag(rw)
            if snapshot { config.source = .fromTemplate }
            if let size { config.size = .text(size) }
            return config
        }
        let kernel = volume("kernel", snapshot: false, rw: false)
        let privateVolume = volume("private", snapshot: false, persistent: true, size: "2147483648")
        switch vmClass {
        case .appVM:
            return [volume("root", snapshot: true), privateVolume, volume("volatile", snapshot: false, size: "10737418240"), kernel]
        case .templateVM, .standaloneVM:
            return [
                volume("root", snapshot: false, persistent: true, size: "10737418240"), privateVolume,
                volume("volatile", snapshot: false, size: "10737418240"), kernel,
            ]
        case .dispVM:
            return [
                volume("root", snapshot: true), volume("private", snapshot: true),
                volume("volatile", snapshot: false, size: "12884901888"), kernel,
            ]
        case .adminVM, .remoteVM:
            return []
        }
    }

    /// Reads `<volume-config>` of a `<domain>` over the class defaults.
    static func read(_ element: XMLNode, vmClass: VMClass, qube: String?) throws -> VolumeConfigs {
        var volumes = defaults(for: vmClass)
        guard vmClass.hasVolumes else { return VolumeConfigs(volumes: volumes) }
        for container in element.children where container.name == "volume-config" {
            for volume in container.children where volume.name == "volume" {
                guard let name = volume.attribute("name") else {
                    throw StoreError(.assertionError, "volume without name", qube: qube, field: "volume")
                }
                var index = volumes.firstIndex { $0.name == name }
                if index == nil {
                    volumes.append(VolumeConfig(name: name))
                    index = volumes.count - 1
                }
                for attribute in volume.attributes {
                    switch (attribute.value.utf8.count, attribute.value) {
                    case (4, "True"): volumes[index!].set(attribute.name, .flag(true))
                    case (5, "False"): volumes[index!].set(attribute.name, .flag(false))
                    default: volumes[index!].set(attribute.name, .text(attribute.value))
                    }
                }
            }
        }
        return VolumeConfigs(volumes: volumes)
    }
}

/// Builds a qube's volumes from its configuration as qubesd's storage layer
/// does at domain-load (docs/qubes-xml.md, "Volumes").
struct VolumeBuilder {
    let store: Store
    let configs: [Int: VolumeConfigs]
    private struct VolumeKey: Hashable {
        var pool: String
        var vid: String
    }

    /// Every (pool, vid) some qube is configured with.
    private let knownVolumes: Set<VolumeKey>

    /// What building a volume needs of a pool, read once per pool.
    private struct PoolFacts {
        var pool: Pool
        var driver: PoolDriver
        var revisionsToKeep: String
    }

    /// Pools with a known driver, by name.
    private let poolFacts: [String: PoolFacts]

    init(store: Store, configs: [Int: VolumeConfigs]) {
        self.store = store
        self.configs = configs
        var known = Set<VolumeKey>()
        for (qid, qubeConfigs) in configs {
            guard let domain = store[qid: qid] else { continue }
            for config in qubeConfigs.volumes {
                let pool = config.pool?.text ?? store.defaultPool(forVolume: config.name) ?? ""
                let vid = config.vid?.text ?? Self.defaultVID(domain, config.name)
                known.insert(VolumeKey(pool: pool, vid: vid))
            }
        }
        knownVolumes = known
        var facts: [String: PoolFacts] = [:]
        for (name, pool) in store.pools {
            guard let driver = PoolDriver(rawValue: pool.driver) else { continue }
            facts[name] = PoolFacts(pool: pool, driver: driver, revisionsToKeep: pool[attribute: "revisions_to_keep"] ?? "1")
        }
        poolFacts = facts
    }

    static func defaultVID(_ domain: Domain, _ volume: String) -> String {
        (domain.vmClass == .templateVM ? "vm-templates/" : "appvms/") + domain.name + "/" + volume
    }

    func volumes(of domain: Domain) throws -> [Volume] {
        guard let qubeConfigs = configs[domain.qid] else { return [] }
        return try qubeConfigs.volumes.map { try volume($0, of: domain, depth: 0) }
    }

    private func volume(_ name: String, of domain: Domain, depth: Int) throws -> Volume {
        guard let config = configs[domain.qid]?[name] else {
            throw StoreError(.keyError, "'\(name)'", qube: domain.name, field: "volume")
        }
        return try volume(config, of: domain, depth: depth)
    }

    private func volume(_ config: VolumeConfig, of domain: Domain, depth: Int) throws -> Volume {
        let name = config.name
        func fail(_ kind: StoreError.Kind, _ message: String, _ value: String? = nil) -> StoreError {
            StoreError(kind, message, qube: domain.name, field: "volume \(name)", value: value)
        }
        if let key = config.unknownKeys.first {
            throw fail(.typeError, "object.__init__() takes exactly one argument (the instance to initialize)", key)
        }
        var pool = config.pool?.text
        var size = config.size
        var source: String?
        switch config.source {
        case .fromTemplate?:
            guard let templateName = domain.properties["template"], let template = store[templateName] else {
                throw fail(.attributeError, "property 'template' have no default")
            }
            guard depth < 16 else { throw fail(.assertionError, "template chain too deep") }
            let origin: Volume
            if configs[template.qid] != nil {
                origin = try volume(name, of: template, depth: depth + 1)
            } else if let built = template.volumes.first(where: { $0.name == name }) {
                origin = built
            } else {
                throw fail(.keyError, "'\(name)'")
            }
            source = origin.source ?? origin.vid
            pool = origin.pool
            size = origin.size.map(VolumeConfigValue.text)
        case let value?:
            let vid = value.text
            guard let sourcePool = pool, knownVolumes.contains(VolumeKey(pool: sourcePool, vid: vid)) else {
                throw fail(.keyError, "'\(vid)'", vid)
            }
            source = vid
        case nil:
            break
        }
        guard let poolName = pool ?? store.defaultPool(forVolume: name) else {
            throw fail(.attributeError, Store.standardVolumes.contains(name) ? "Cannot determine default storage pool" : "'Qubes' object has no attribute 'default_pool_\(name)'")
        }
        guard let facts = poolFacts[poolName] else {
            throw fail(.qubesException, "Unknown storage pool \(poolName)", poolName)
        }
        var sizeText: String?
        if let size {
            guard let number = ValueParsers.pythonInt(size.text) else {
                throw fail(.valueError, "invalid literal for int() with base 10: '\(size.text)'", size.text)
            }
            sizeText = number == "0" ? nil : number
        }
        var revisions = config.revisionsToKeep?.text
        if let revisions, ValueParsers.pythonInt(revisions) == nil {
            throw fail(.valueError, "invalid literal for int() with base 10: '\(revisions)'", revisions)
        }
        let rw = config.rw ?? .flag(false)
        let saveOnStop = config.saveOnStop ?? .flag(false)
        let snapOnStart = config.snapOnStart ?? .flag(false)
        if snapOnStart.isTrue && source == nil {
            throw fail(.storagePoolException, "snap_on_start specified on '\(name)' but no volume source set")
        }
        if !snapOnStart.isTrue && source != nil {
            throw fail(.storagePoolException, "source specified on '\(name)' but no snap_on_start set")
        }
        var vid = config.vid?.text ?? Self.defaultVID(domain, name)
        let driver = facts.driver
        let poolRevisions = facts.revisionsToKeep
        switch driver {
        case .linuxKernel:
            if rw.isTrue { throw fail(.assertionError, "a volume in a linux-kernel pool must be read-only", rw.text) }
            vid = store.effectiveKernel(of: domain) ?? ""
            revisions = "0"
        case .file:
            if snapOnStart.isTrue && saveOnStop.isTrue {
                throw fail(.notImplementedError, "snap_on_start + save_on_stop not supported by file driver")
            }
            revisions = saveOnStop.isTrue ? (revisions.flatMap(ValueParsers.pythonInt) ?? poolRevisions) : "0"
        case .lvmThin:
            if config.vid == nil {
                vid = (facts.pool[attribute: "volume_group"] ?? "") + "/vm-" + domain.name + "-" + name
            }
            revisions = revisions ?? poolRevisions
        case .fileReflink, .zfs, .callback:
            revisions = revisions ?? poolRevisions
        }
        return Volume(
            name: name, pool: poolName, vid: vid, revisionsToKeep: revisions ?? poolRevisions, rw: rw.text,
            saveOnStop: saveOnStop.text, snapOnStart: snapOnStart.text, ephemeral: config.ephemeral?.text,
            size: sizeText, source: source)
    }
}

extension Store {
    /// The volumes qubesd creates for a new qube of `domain`'s class, with
    /// `pool` for every writable, non-snapshot volume and `pools` mapping
    /// volume names to pools (others use the global `default_pool_<volume>`).
    /// Snapshot volumes follow the template.
    /// - Throws: `ProtocolError` when asked to move a snapshot volume,
    ///   `QubesException` for an unknown pool.
    public func newVolumes(for domain: Domain, pool: String? = nil, pools: [String: String] = [:]) throws -> [Volume] {
        var volumes = VolumeConfigs.defaults(for: domain.vmClass)
        if let pool {
            for index in volumes.indices where volumes[index].source == nil && volumes[index].rw?.isTrue == true {
                volumes[index].pool = .text(pool)
            }
        }
        for (name, pool) in pools {
            guard let index = volumes.firstIndex(where: { $0.name == name }) else {
                throw StoreError(.protocolError, "Volume must be one of: root, private, volatile, kernel", value: name)
            }
            guard volumes[index].source == nil else {
                throw StoreError(.protocolError, "Cannot set pool of the snapshot volume '\(name)'", value: pool)
            }
            volumes[index].pool = .text(pool)
        }
        let builder = VolumeBuilder(store: self, configs: [domain.qid: VolumeConfigs(volumes: volumes)])
        return try builder.volumes(of: domain)
    }
}
