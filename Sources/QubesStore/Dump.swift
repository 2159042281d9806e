import LQCommon
/// The canonical JSON dump of a store (`lq store dump`; docs/qubes-xml.md, "Canonical JSON dump").
public enum StoreDump {
    /// The dump document; with `effective`, every qube also lists the
    /// effective value of every property of its class.
    public static func json(_ store: Store, effective: Bool = false, host: HostFacts = .offline) -> JSONValue {
        let resolver = EffectiveProperties(store: store, host: host)
        let domains = store.domainsByQID.map { domain in
            qube(domain, effective: effective ? resolver.values(of: domain) : nil)
        }
        let labels = store.sortedLabels.map { label -> JSONValue in
            .object(["color": .string(label.color), "index": .integer(String(label.index)), "name": .string(label.name)])
        }
        var pools: [String: JSONValue] = [:]
        for pool in store.pools.values {
            pools[pool.name] = attributes(pool.attributes)
        }
        return .object([
            "domains": .array(domains),
            "global": .object([
                "effective": effectiveObject(resolver.global()),
                "set": .object(store.globalProperties.mapValues(JSONValue.string)),
            ]),
            "labels": .array(labels),
            "pools": .object(pools),
        ])
    }

    /// `{"$error": "Class: message"}` for a failing read, else the value.
    static func effectiveObject(_ values: [String: EffectiveValue]) -> JSONValue {
        .object(
            values.mapValues { result in
                switch result {
                case .success(let value): value
                case .failure(let error): .object(["$error": .string("\(error.kind.rawValue): \(error.message)")])
                }
            })
    }

    private static func attributes(_ attributes: [XMLNode.Attribute]) -> JSONValue {
        var object: [String: JSONValue] = [:]
        for attribute in attributes { object[attribute.name] = .string(attribute.value) }
        return .object(object)
    }

    private static func qube(_ domain: Domain, effective: [String: EffectiveValue]?) -> JSONValue {
        var devices: [String: JSONValue] = [:]
        for (deviceClass, assignments) in domain.devices where !assignments.isEmpty {
            let sorted = assignments.sorted { lhs, rhs in
                let left = lhs.backendDomain ?? "*"
                let right = rhs.backendDomain ?? "*"
                if left != right { return left.precedesByCodePoint(right) }
                return lhs.port.precedesByCodePoint(rhs.port)
            }
            devices[deviceClass] = .array(
                sorted.map { device in
                    var options: [String: JSONValue] = [:]
                    for option in device.options { options[option.name ?? "None"] = .string(option.value) }
                    return .object([
                        "backend_domain": .string(device.backendDomain ?? "*"), "device_id": .string(device.identity),
                        "mode": .string(device.mode.rawValue), "options": .object(options), "port_id": .string(device.port),
                    ])
                })
        }
        let features = domain.features.map { JSONValue.Member($0.key.value, .string($0.value)) }
        var volumes: [String: JSONValue] = [:]
        for volume in domain.volumes { volumes[volume.name] = attributes(volume.savedAttributes) }
        var object: [String: JSONValue] = [
            "class": .string(domain.vmClass.rawValue),
            "devices": .object(devices),
            "features": .members(features),
            "name": .string(domain.name),
            "properties": .object(domain.explicitProperties.mapValues(JSONValue.string)),
            "qid": .integer(String(domain.qid)),
            "tags": .array(domain.tags.sorted().map { .string($0.value) }),
            "uuid": .string(domain.uuid),
            "volumes": .object(volumes),
        ]
        if let effective { object["effective"] = effectiveObject(effective) }
        return .object(object)
    }
}
