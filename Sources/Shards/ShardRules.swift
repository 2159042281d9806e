import OrderedCollections
import QubesStore

/// A volume's identity in storage: its pool and vid.
struct VolumeKey: Hashable {
    var pool: String
    var vid: String

    init(_ volume: Volume) {
        pool = volume.pool
        vid = volume.vid
    }
}

/// The merge rules that look at other qubes and pools: identity, pools,
/// references (recovery) and volumes (docs/shards.md, "Sanitize", "References", "Merge rules").
struct ShardRules {
    /// The main store (trusted).
    let main: Store
    /// The pools of the shard being merged that were accepted.
    var shardPools: OrderedDictionary<String, Pool> = [:]
    /// Checking a shard on its own (`lq shard check`): whatever needs the
    /// main store (labels, templates, the kernel pool) is not checked.
    var standalone = false

    init(main: Store) { self.main = main }

    func refuse(_ domain: Domain, _ field: String, _ value: String?, _ message: String) -> ShardIssue {
        ShardIssue(message, qube: domain.name, field: field, value: value)
    }

    /// Name rules, class and label.
    func checkIdentity(_ domain: Domain) throws(ShardIssue) {
        do {
            try Store.validateQubeName(domain.name)
        } catch {
            throw refuse(domain, "name", domain.name, (error as? StoreError)?.message ?? "\(error)")
        }
        guard ShardSanitizer.allowedClasses.contains(domain.vmClass) else {
            throw refuse(domain, "class", domain.vmClass.rawValue, "a shard may not hold a qube of this class")
        }
        if !standalone, let label = domain.properties["label"], main.label(named: label) == nil {
            throw refuse(domain, "property.label", label, "no such label in the main store")
        }
    }

    /// What qubes already use: names, uuids, (pool, vid) pairs and network addresses.
    struct Taken {
        /// Properties a qube may set to claim a network address.
        static let addressProperties = ["ip", "ip6", "mac"]

        let main: Store
        var names = Set<ExactString>()
        var uuids = Set<String>()
        var vids = Set<VolumeKey>()
        /// Explicit addresses of shard qubes claimed so far.
        private var shardAddresses = Set<String>()
        /// Effective addresses of the main store's qubes, computed when first needed.
        private var mainAddresses: Set<String>?

        /// What the qubes of `main` use.
        init(main: Store) {
            self.main = main
            for domain in main.domains { claim(domain, addresses: false) }
        }

        /// Marks the name and uuid of `domain` as used, and its volumes and
        /// explicit addresses unless told otherwise.
        mutating func claim(_ domain: Domain, volumes: Bool = true, addresses: Bool = true) {
            names.insert(ExactString(domain.name))
            uuids.insert(domain.uuid)
            if volumes {
                for volume in domain.volumes { vids.insert(VolumeKey(volume)) }
            }
            guard addresses else { return }
            for property in Self.addressProperties {
                if let value = domain.properties[property], !value.isEmpty { shardAddresses.insert(value) }
            }
        }

        /// Throws when the name, uuid or an explicit network address of `domain` is in use.
        mutating func checkUnique(_ domain: Domain) throws(ShardIssue) {
            if names.contains(ExactString(domain.name)) {
                throw ShardIssue("the name is taken by another qube", qube: domain.name, field: "name", value: domain.name)
            }
            if uuids.contains(domain.uuid) {
                throw ShardIssue("the uuid is taken by another qube", qube: domain.name, field: "uuid", value: domain.uuid)
            }
            for property in Self.addressProperties {
                guard let value = domain.properties[property], !value.isEmpty else { continue }
                if shardAddresses.contains(value) || effectiveMainAddresses().contains(value) {
                    throw ShardIssue(
                        "the address is taken by another qube", qube: domain.name, field: "property." + property, value: value)
                }
            }
        }

        private mutating func effectiveMainAddresses() -> Set<String> {
            if let mainAddresses { return mainAddresses }
            let effective = EffectiveProperties(store: main)
            var found = Set<String>()
            for domain in main.domains {
                if let mac = domain.properties["mac"] { found.insert(mac) }
                for property in ["ip", "ip6", "visible_ip"] {
                    if case .success(.string(let address)) = effective.value(property, of: domain) { found.insert(address) }
                }
            }
            mainAddresses = found
            return found
        }
    }

    /// Where a pool keeps its data (`dir_path`, `volume_group` or `container`).
    static func location(of pool: Pool) -> String? {
        pool[attribute: "dir_path"] ?? pool[attribute: "volume_group"] ?? pool[attribute: "container"]
    }

    /// Whether `inner` is `outer` or lies inside it, comparing path components.
    static func path(_ inner: String, isInside outer: String) -> Bool {
        let innerParts = inner.split(separator: "/")
        let outerParts = outer.split(separator: "/")
        return innerParts.count >= outerParts.count && Array(innerParts.prefix(outerParts.count)) == outerParts
    }

    /// Checks a pool a shard declares against the main store's and `taken` names.
    func checkPool(_ pool: Pool, taken: Set<String>) throws(ShardIssue) {
        func refused(_ field: String, _ value: String?, _ message: String) -> ShardIssue {
            ShardIssue(message, field: "pool." + pool.name + "." + field, value: value)
        }
        guard main.pools[pool.name] == nil, !taken.contains(pool.name) else {
            throw refused("name", pool.name, "pool '\(pool.name)' already exists")
        }
        guard pool.driver != "linux-kernel", PoolDriver(rawValue: pool.driver) != nil else {
            throw refused("driver", pool.driver, "pool '\(pool.name)': driver not allowed in a shard")
        }
        guard let location = Self.location(of: pool), !location.isEmpty,
            !location.split(separator: "/").contains("..")
        else {
            throw refused("location", Self.location(of: pool), "pool '\(pool.name)' has no usable location")
        }
        // A relative dir_path (an exported shard attached without import) would be read from qubesd's folder.
        if let folder = pool[attribute: "dir_path"], !folder.hasPrefix("/") {
            throw refused("dir_path", folder, "pool '\(pool.name)': dir_path must be absolute")
        }
        for mainPool in main.pools.values {
            guard let other = Self.location(of: mainPool) else { continue }
            if Self.path(location, isInside: other) || Self.path(other, isInside: location) {
                throw refused(
                    "location", location, "pool '\(pool.name)' overlaps the main store's pool '\(mainPool.name)' (\(other))")
            }
        }
    }

    /// Recovery (docs/shards.md, "References"): every reference of `original` (the qube
    /// before sanitizing) to a qube that `available` does not know is set
    /// fail-closed in `domain` and noted in `prohibit-start`; a reference
    /// sanitizing already reset stays at its default, and is noted too.
    /// - Returns: one change per recovered reference.
    /// - Throws: when no valid replacement exists (a DispVM's template).
    func recover(_ domain: inout Domain, from original: Domain, available: (String) -> Domain?) throws(ShardIssue) -> [ShardChange] {
        var changes: [ShardChange] = []
        let missing = original.properties.filter { property, value in
            !value.isEmpty && Schema.property(property, of: domain.vmClass)?.kind == .qubeRef && available(value) == nil
        }
        for (property, value) in missing.sorted(by: { ExactString($0.key) < ExactString($1.key) }) {
            let replacement: String?
            switch property {
            case _ where domain.properties[property] == nil:
                replacement = nil
            case "netvm", "default_dispvm":
                replacement = ""
            case "template":
                replacement = try templateReplacement(for: domain, original: value)
            default:
                replacement = nil
            }
            domain.properties[property] = replacement
            changes.append(ShardChange(qube: domain.name, field: "property." + property, old: value, new: replacement))
        }
        if !changes.isEmpty {
            let rationale = changes.map { change in
                "\(change.field.dropFirst("property.".count)) was '\(change.old ?? "")', not available at merge"
            }.joined(separator: "; ")
            let key = ExactString("prohibit-start")
            let existing = domain.features[key].map { $0.isEmpty ? "" : $0 + "; " } ?? ""
            domain.features[key] = existing + rationale
        }
        return changes
    }

    private func templateReplacement(for domain: Domain, original: String) throws(ShardIssue) -> String {
        let isDispVM = domain.vmClass == .dispVM
        let global = isDispVM ? "default_dispvm" : "default_template"
        guard let name = main.globalProperties[global], let target = main[name],
            isDispVM ? Volume.isTrue(target.properties["template_for_dispvms"] ?? "False") : target.vmClass == .templateVM
        else {
            throw refuse(
                domain, "property.template", original,
                "template not available and the global \(global) is no valid replacement; qube not merged")
        }
        return name
    }

    /// The volume rules (docs/shards.md, "Sanitize", volumes). With `templateRecovered`
    /// the pool and `source=` of snapshot volumes are rewritten to follow the new template.
    /// - Parameter vids: (pool, vid) pairs already taken, updated.
    func checkVolumes(
        _ domain: inout Domain, templateRecovered: Bool, available: (String) -> Domain?, vids: inout Set<VolumeKey>
    ) throws(ShardIssue) {
        for index in domain.volumes.indices {
            var volume = domain.volumes[index]
            let field = "volume." + volume.name
            if standalone && (Volume.isTrue(volume.snapOnStart) || volume.name == "kernel") {
                continue
            } else if Volume.isTrue(volume.snapOnStart) {
                guard let templateName = domain.properties["template"], let template = available(templateName),
                    let origin = template.volumes.first(where: { $0.name == volume.name })
                else {
                    throw refuse(domain, field, volume.source, "snapshot volume without a template volume to snapshot")
                }
                let expected = origin.source ?? origin.vid
                if templateRecovered {
                    volume.pool = origin.pool
                    if volume.source != nil { volume.source = expected }
                }
                guard volume.pool == origin.pool else {
                    throw refuse(domain, field + ".pool", volume.pool, "snapshot volume not in the pool of '\(expected)'")
                }
                if let source = volume.source, source != expected {
                    throw refuse(domain, field + ".source", source, "source is not the template's volume '\(expected)'")
                }
                try checkVID(volume, of: domain, namingQube: true, vids: &vids)
            } else if volume.name == "kernel" {
                guard main.pools[volume.pool]?.driver == "linux-kernel", volume.source == nil, !Volume.isTrue(volume.rw) else {
                    throw refuse(domain, field + ".pool", volume.pool, "kernel volume outside the main store's linux-kernel pool")
                }
            } else if Volume.isTrue(volume.saveOnStop) || volume.name == "volatile" {
                guard shardPools[volume.pool] != nil else {
                    throw refuse(domain, field + ".pool", volume.pool, "data volume outside the shard's own pools")
                }
                guard volume.source == nil else {
                    throw refuse(domain, field + ".source", volume.source, "a data volume may not have a source")
                }
                try checkVID(volume, of: domain, namingQube: false, vids: &vids)
            } else {
                throw refuse(domain, field, volume.name, "volume neither keeps data nor snapshots a template volume")
            }
            domain.volumes[index] = volume
        }
    }

    /// A vid must be a relative path, unused in its pool; with `namingQube`
    /// (snapshots, which live in main-store pools) it must name the qube too.
    private func checkVID(_ volume: Volume, of domain: Domain, namingQube: Bool, vids: inout Set<VolumeKey>) throws(ShardIssue) {
        let field = "volume." + volume.name + ".vid"
        let parts = volume.vid.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(".."), !parts.contains(""), !namingQube || parts.contains(Substring(domain.name)) else {
            throw refuse(domain, field, volume.vid, "vid is not a path of the qube's own")
        }
        guard vids.insert(VolumeKey(volume)).inserted else {
            throw refuse(domain, field, volume.vid, "another qube uses the same volume")
        }
    }
}
