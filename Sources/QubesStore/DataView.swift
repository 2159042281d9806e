/// The data a qubes.xml document states, independent of formatting, so
/// that an input file and qubesd's save of it can be compared.
struct DataView {
    struct QubeView {
        var name: String
        var idAttribute: String?
        var properties: [(name: String, value: String)] = []
        var features: [(name: String, value: String)] = []
        var tags: Set<ExactString> = []
        var devices: [String: Set<String>] = [:]
        var volumes: [String: [String: String]] = [:]
        var hasVolumeConfig = false
    }

    var rootName: String
    var rootAttributes: [XMLNode.Attribute]
    var unknown: [StoreFinding] = []
    var labels: [String: (color: String?, name: String)] = [:]
    var pools: [String: [String: String]] = [:]
    var globals: [(name: String, value: String)] = []
    /// Qubes by canonical qid text.
    var qubes: [String: QubeView] = [:]

    private static let containers: [String: String] = [
        "labels": "label", "pools": "pool", "properties": "property", "domains": "domain",
    ]
    private static let domainContainers: [String: String] = [
        "properties": "property", "features": "feature", "tags": "tag", "devices": "device", "volume-config": "volume",
    ]

    init(_ root: XMLNode) {
        rootName = root.name
        rootAttributes = Array(root.attributes)
        for container in root.children {
            guard let item = Self.containers[container.name] else {
                unknownElement(container.name, qube: nil)
                continue
            }
            for element in container.children {
                guard element.name == item else {
                    unknownElement("\(container.name)/\(element.name)", qube: nil)
                    continue
                }
                read(element)
            }
        }
    }

    private mutating func unknownElement(_ path: String, qube: String?) {
        unknown.append(StoreFinding(qube: qube, field: path, value: nil, message: "unknown element <\(path)> is ignored and dropped by qubesd"))
    }

    private static func value(_ element: XMLNode) -> String {
        if let reference = element.attribute("ref"), !reference.isEmpty { return reference }
        return element.text ?? ""
    }

    private mutating func read(_ element: XMLNode) {
        switch element.name {
        case "label":
            labels[element.attribute("id") ?? ""] = (element.attribute("color"), element.text ?? "")
        case "pool":
            var attributes: [String: String] = [:]
            for attribute in element.attributes { attributes[attribute.name] = attribute.value }
            pools[element.attribute("name") ?? ""] = attributes
        case "property":
            globals.append((element.attribute("name") ?? "", Self.value(element)))
        default:
            readDomain(element)
        }
    }

    private mutating func readDomain(_ element: XMLNode) {
        var qube = QubeView(name: "", idAttribute: element.attribute("id"))
        var qid = element.attribute("class") == VMClass.adminVM.rawValue ? "0" : ""
        for container in element.children {
            guard let item = Self.domainContainers[container.name] else {
                unknownElement("domain/\(container.name)", qube: qube.name)
                continue
            }
            if container.name == "volume-config" { qube.hasVolumeConfig = true }
            for child in container.children where child.name == item {
                let name = child.attribute("name") ?? ""
                switch item {
                case "property":
                    let value = Self.value(child)
                    qube.properties.append((name, value))
                    if name == "name" { qube.name = value }
                    if name == "qid" { qid = ValueParsers.pythonInt(value) ?? value }
                case "feature": qube.features.append((name, child.text ?? ""))
                case "tag": qube.tags.insert(ExactString(name))
                case "device":
                    if let required = child.attribute("required") {
                        unknown.append(
                            StoreFinding(
                                qube: qube.name, field: "devices.\(container.attribute("class") ?? "None")", value: required,
                                message: "legacy attribute required=\"\(required)\" is rewritten as a mode on save"))
                    }
                    let options = child.children.map { "\($0.attribute("name") ?? "")=\($0.text ?? "")" }.sorted()
                    let mode = child.attribute("required").map { ValueParsers.bool($0) == true ? "required" : "auto-attach" }
                    let descriptor = [
                        child.attribute("backend-domain") ?? "*", child.attribute("id") ?? "*",
                        mode ?? child.attribute("mode") ?? "required", child.attribute("identity") ?? "*",
                    ] + options
                    qube.devices[container.attribute("class") ?? "", default: []].insert(descriptor.joined(separator: " "))
                default:
                    var attributes: [String: String] = [:]
                    for attribute in child.attributes { attributes[attribute.name] = attribute.value }
                    qube.volumes[name, default: [:]].merge(attributes) { $1 }
                }
            }
        }
        qubes[qid] = qube
    }

    /// What qubesd's load changed, from `self` (the input) to `saved`.
    func differences(to saved: DataView) -> [StoreFinding] {
        var findings = unknown
        if rootName != "qubes" || !rootAttributes.isEmpty {
            findings.append(
                StoreFinding(qube: nil, field: "root", value: rootName, message: "root element name and attributes are ignored; qubesd writes a bare <qubes>"))
        }
        for (id, label) in labels.sorted(by: { $0.key < $1.key }) {
            guard let after = saved.labels[id] else {
                findings.append(StoreFinding(qube: nil, field: "labels.\(id)", value: label.name, message: "label is replaced by a later one with the same index"))
                continue
            }
            if after.color != label.color {
                findings.append(
                    StoreFinding(qube: nil, field: "labels.\(id).color", value: label.color, message: "label colour is changed to '\(after.color ?? "")' on load"))
            }
        }
        for (name, attributes) in pools.sorted(by: { $0.key < $1.key }) {
            guard let after = saved.pools[name] else {
                findings.append(StoreFinding(qube: nil, field: "pools.\(name)", value: name, message: "pool is dropped on load"))
                continue
            }
            findings += Self.compare(attributes, after, qube: nil, field: "pools.\(name)")
        }
        findings += Self.compare(globals, saved.globals, qube: nil, prefix: "")
        for (qid, qube) in qubes.sorted(by: { $0.key < $1.key }) {
            guard let after = saved.qubes[qid] else { continue }
            findings += qube.differences(to: after)
        }
        for (qid, qube) in saved.qubes.sorted(by: { $0.key < $1.key }) where qubes[qid] == nil {
            findings.append(StoreFinding(qube: qube.name, field: "qid", value: qid, message: "qube is missing from the file and created on load"))
        }
        return findings
    }

    /// Changes between two name → value lists, where a later duplicate wins.
    static func compare(_ before: [(name: String, value: String)], _ after: [(name: String, value: String)], qube: String?, prefix: String)
        -> [StoreFinding]
    {
        var findings: [StoreFinding] = []
        var seen: [String: String] = [:]
        for (name, value) in before {
            if let earlier = seen[name] {
                findings.append(
                    StoreFinding(qube: qube, field: prefix + name, value: earlier, message: "given more than once; only the last value is kept"))
            }
            seen[name] = value
        }
        var afterMap: [String: String] = [:]
        for (name, value) in after { afterMap[name] = value }
        return findings + compare(seen, afterMap, qube: qube, field: String(prefix.dropLast()), prefix: prefix)
    }

    static func compare(_ before: [String: String], _ after: [String: String], qube: String?, field: String, prefix: String? = nil)
        -> [StoreFinding]
    {
        let prefix = prefix ?? field + "."
        var findings: [StoreFinding] = []
        for name in before.keys.sorted() {
            let old = before[name]!
            if let new = after[name] {
                if !new.utf8.elementsEqual(old.utf8) {
                    findings.append(StoreFinding(qube: qube, field: prefix + name, value: old, message: "changed to '\(new)' on load"))
                }
            } else {
                findings.append(StoreFinding(qube: qube, field: prefix + name, value: old, message: "dropped on load"))
            }
        }
        for name in after.keys.sorted() where before[name] == nil {
            findings.append(StoreFinding(qube: qube, field: prefix + name, value: after[name], message: "added on load"))
        }
        return findings
    }
}

extension DataView.QubeView {
    func differences(to saved: DataView.QubeView) -> [StoreFinding] {
        var findings: [StoreFinding] = []
        let qube = saved.name
        if let idAttribute, let savedID = saved.idAttribute, idAttribute != savedID {
            findings.append(StoreFinding(qube: qube, field: "id", value: idAttribute, message: "domain id is ignored; qubesd writes '\(savedID)'"))
        }
        findings += DataView.compare(properties, saved.properties, qube: qube, prefix: "")
        findings += DataView.compare(features, saved.features, qube: qube, prefix: "features.")
        let removed = tags.subtracting(saved.tags).map(\.value).sorted()
        let added = saved.tags.subtracting(tags).map(\.value).sorted()
        if !removed.isEmpty || !added.isEmpty {
            findings.append(
                StoreFinding(
                    qube: qube, field: "tags", value: removed.joined(separator: " "),
                    message: "tags changed on load: removed [\(removed.joined(separator: ", "))], added [\(added.joined(separator: ", "))]"))
        }
        for deviceClass in Set(devices.keys).union(saved.devices.keys).sorted() {
            let before = devices[deviceClass] ?? []
            let after = saved.devices[deviceClass] ?? []
            for device in before.subtracting(after).sorted() {
                findings.append(StoreFinding(qube: qube, field: "devices.\(deviceClass)", value: device, message: "device assignment dropped or changed on load"))
            }
            for device in after.subtracting(before).sorted() {
                findings.append(StoreFinding(qube: qube, field: "devices.\(deviceClass)", value: device, message: "device assignment written differently on save"))
            }
        }
        if !hasVolumeConfig && saved.hasVolumeConfig {
            findings.append(StoreFinding(qube: qube, field: "volume-config", value: nil, message: "no <volume-config>; volumes are rebuilt from defaults"))
        } else {
            for name in volumes.keys.sorted() {
                findings += DataView.compare(volumes[name]!, saved.volumes[name] ?? [:], qube: qube, field: "volume \(name)")
            }
        }
        return findings
    }
}
