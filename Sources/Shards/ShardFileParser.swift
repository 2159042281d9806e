import OrderedCollections
import QubesStore

extension ShardFile {
    /// Most qubes one shard file may hold (the default qid range holds 2,000).
    public static let maxDomains = 2000
    /// Most children of one container (`<features>`, `<tags>`, `<pools>`, …).
    public static let maxChildren = 4096

    /// Parses an untrusted shard file strictly: no DTD, `XMLReader.Limits.untrusted`,
    /// only the elements and attributes the format knows.
    /// - Parameter file: the path, for messages.
    /// - Throws: `ShardIssue` naming the file, and the qube and field when known.
    public static func parse(_ bytes: [UInt8], file: String, limits: XMLReader.Limits = .untrusted) throws -> ShardFile {
        let document: XMLDocument
        do {
            document = try XMLReader.parse(bytes, limits: limits)
        } catch let error as StoreError {
            throw ShardIssue(error, file: file)
        }
        var parser = ShardFileParser(document: document, file: file)
        return try parser.shard()
    }
}

/// Reads the element tree of a shard file into a `ShardFile`.
private struct ShardFileParser {
    let document: XMLDocument
    let file: String
    var notices: [ShardIssue] = []

    init(document: XMLDocument, file: String) {
        self.document = document
        self.file = file
    }

    func issue(_ message: String, _ node: XMLNode, qube: String? = nil, field: String? = nil, value: String? = nil) -> ShardIssue {
        ShardIssue(message, file: file, qube: qube, field: field, value: value, location: document.location(of: node.offset))
    }

    /// Checks that `node` has only `allowed` attributes and only `children` child elements.
    func expect(_ node: XMLNode, attributes allowed: Set<String>, children: Set<String>, qube: String? = nil) throws {
        for attribute in node.attributes where !allowed.contains(attribute.name) {
            throw issue("unknown attribute of <\(node.name)>", node, qube: qube, field: attribute.name, value: attribute.value)
        }
        var seen = Set<String>()
        for attribute in node.attributes where !seen.insert(attribute.name).inserted {
            throw issue("repeated attribute of <\(node.name)>", node, qube: qube, field: attribute.name)
        }
        let limit = node.name == "domains" ? ShardFile.maxDomains : ShardFile.maxChildren
        if node.children.count > limit {
            throw issue("<\(node.name)> has \(node.children.count) children, more than the limit of \(limit)", node, qube: qube)
        }
        for child in node.children where !children.contains(child.name) {
            throw issue("unexpected element <\(child.name)> in <\(node.name)>", child, qube: qube, field: child.name)
        }
    }

    func required(_ node: XMLNode, _ name: String, qube: String? = nil) throws -> String {
        guard let value = node.attribute(name) else {
            throw issue("<\(node.name)> has no \(name) attribute", node, qube: qube, field: name)
        }
        return value
    }

    /// The one child called `name`, or nil; a repeated one is an error.
    func single(_ node: XMLNode, _ name: String, qube: String? = nil) throws -> XMLNode? {
        let found = node.children(named: name)
        if found.count > 1 { throw issue("more than one <\(name)> in <\(node.name)>", found[1], qube: qube, field: name) }
        return found.first
    }

    mutating func shard() throws -> ShardFile {
        let root = document.root
        guard root.name == "shard" else { throw issue("the root element is <\(root.name)>, not <shard>", root) }
        try expect(root, attributes: ["version", "name"], children: ["pools", "domains"])
        let version = try required(root, "version")
        guard version == ShardFile.version else {
            throw issue("unsupported shard format version", root, field: "version", value: version)
        }
        let name = try required(root, "name")
        guard ShardFile.isValidName(name) else {
            throw issue("invalid shard name (allowed: [A-Za-z0-9_-]{1,31})", root, field: "name", value: name)
        }
        var shard = ShardFile(name: name)
        if let pools = try single(root, "pools") {
            try expect(pools, attributes: [], children: ["pool"])
            for element in pools.children { shard.pools.append(try pool(element)) }
        }
        guard let domains = try single(root, "domains") else { throw issue("<shard> has no <domains>", root) }
        try expect(domains, attributes: [], children: ["domain"])
        for element in domains.children { shard.domains.append(try domain(element)) }
        shard.notices = notices
        return shard
    }

    func pool(_ element: XMLNode) throws -> Pool {
        try expect(element, attributes: Set(element.attributes.map(\.name)), children: [])
        let name = try required(element, "name")
        let driver = try required(element, "driver")
        return Pool(name: name, driver: driver, attributes: Array(element.attributes))
    }

    /// `(name, text)` of each child `item` of `container`, refusing repeats.
    func namedValues(_ container: XMLNode, _ item: String, qube: String?) throws -> [(String, String, XMLNode)] {
        try expect(container, attributes: [], children: [item], qube: qube)
        var seen = Set<ExactString>()
        return try container.children.map { element in
            try expect(element, attributes: ["name"], children: [], qube: qube)
            let name = try required(element, "name", qube: qube)
            guard seen.insert(ExactString(name)).inserted else {
                throw issue("repeated <\(item)>", element, qube: qube, field: name)
            }
            return (name, element.text ?? "", element)
        }
    }

    mutating func domain(_ element: XMLNode) throws -> Domain {
        try expect(
            element, attributes: ["class", "id"], children: ["properties", "features", "tags", "devices", "volume-config"])
        let classText = try required(element, "class")
        guard let vmClass = VMClass(rawValue: classText) else {
            throw issue("unknown qube class", element, field: "class", value: classText)
        }
        // dom0 and remote qubes are the host's own: their schema differs (an AdminVM's name is fixed), so such a
        // qube could not even be written back into a shard file (docs/shards.md, "Shard file format").
        guard ShardSanitizer.allowedClasses.contains(vmClass) else {
            throw issue("a shard holds only AppVM, DispVM, TemplateVM and StandaloneVM qubes", element, field: "class", value: classText)
        }
        var properties: [String: String] = [:]
        if let container = try single(element, "properties") {
            for (name, text, _) in try namedValues(container, "property", qube: nil) { properties[name] = text }
        }
        guard let name = properties.removeValue(forKey: "name") else {
            throw issue("qube has no name property", element, field: "name")
        }
        guard let uuid = properties.removeValue(forKey: "uuid") else {
            throw issue("qube has no uuid property", element, qube: name, field: "uuid")
        }
        if let id = element.attribute("id") {
            notices.append(issue("id attribute ignored: qids are assigned at merge", element, qube: name, field: "id", value: id))
        }
        if let qid = properties.removeValue(forKey: "qid") {
            notices.append(issue("qid property ignored: qids are assigned at merge", element, qube: name, field: "qid", value: qid))
        }
        var domain = Domain(vmClass: vmClass, qid: 0, name: name, uuid: uuid, properties: properties)
        if let container = try single(element, "features", qube: name) {
            for (feature, text, _) in try namedValues(container, "feature", qube: name) {
                domain.features[ExactString(feature)] = text
            }
        }
        if let container = try single(element, "tags", qube: name) {
            for (tag, _, node) in try namedValues(container, "tag", qube: name) {
                if node.text != nil { throw issue("a tag has no text", node, qube: name, field: "tag", value: tag) }
                domain.tags.append(ExactString(tag))
            }
        }
        for container in element.children(named: "devices") {
            try expect(container, attributes: ["class"], children: ["device"], qube: name)
            let deviceClass = try required(container, "class", qube: name)
            guard domain.devices[deviceClass] == nil else {
                throw issue("repeated <devices>", container, qube: name, field: "devices", value: deviceClass)
            }
            domain.devices[deviceClass] = try container.children.map { try device($0, qube: name) }
        }
        if let container = try single(element, "volume-config", qube: name) {
            try expect(container, attributes: [], children: ["volume"], qube: name)
            domain.volumes = try container.children.map { try volume($0, qube: name) }
        }
        return domain
    }

    func device(_ element: XMLNode, qube: String) throws -> DeviceAssignment {
        try expect(element, attributes: ["backend-domain", "id", "mode", "identity"], children: ["option"], qube: qube)
        let backend = try required(element, "backend-domain", qube: qube)
        let options = try element.children.map { option -> (name: String?, value: String) in
            try expect(option, attributes: ["name"], children: [], qube: qube)
            return (try required(option, "name", qube: qube), option.text ?? "")
        }
        let modeText = try required(element, "mode", qube: qube)
        guard let mode = AssignmentMode(rawValue: modeText), mode.isAutoAttachable else {
            throw issue("unknown device assignment mode", element, qube: qube, field: "mode", value: modeText)
        }
        return DeviceAssignment(
            backendDomain: backend == "*" ? nil : backend, port: try required(element, "id", qube: qube),
            identity: try required(element, "identity", qube: qube), mode: mode, options: options)
    }

    func volume(_ element: XMLNode, qube: String) throws -> Volume {
        try expect(
            element,
            attributes: [
                "name", "pool", "vid", "revisions_to_keep", "rw", "save_on_stop", "snap_on_start", "ephemeral", "size", "source",
            ], children: [], qube: qube)
        func value(_ name: String) throws -> String { try required(element, name, qube: qube) }
        return Volume(
            name: try value("name"), pool: try value("pool"), vid: try value("vid"),
            revisionsToKeep: try value("revisions_to_keep"), rw: try value("rw"), saveOnStop: try value("save_on_stop"),
            snapOnStart: try value("snap_on_start"), ephemeral: element.attribute("ephemeral"), size: element.attribute("size"),
            source: element.attribute("source"))
    }
}
