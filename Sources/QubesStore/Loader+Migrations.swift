/// What qubesd migrates in the raw tree before it builds the qubes, and its global properties (docs/qubes-xml.md, "Loading").
extension Loader {
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
}
