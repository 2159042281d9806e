/// Writes a store as the exact bytes qubesd's save produces (docs/qubes-xml.md, "Canonical form").
public enum XMLWriter {
    /// The qubes.xml bytes of `store`.
    /// - Throws: `StoreError` (`TypeError`) where qubesd's save fails too: a
    ///   label without colour, a device option without name.
    /// - Complexity: O(n log n) in the number of qubes (sorting by name).
    public static func write(_ store: Store) throws -> [UInt8] { try write(store, domains: store.domains) }

    /// `write(store)` for a caller that has `store.domains` already.
    static func write(_ store: Store, domains: [Domain]) throws -> [UInt8] {
        var output = XMLOutput()
        output.bytes.reserveCapacity(1024 + store.count * 1500)
        output.open("qubes", level: 0)

        let labels = store.sortedLabels
        try output.container("labels", level: 1, isEmpty: labels.isEmpty) { output in
            for label in labels {
                guard let color = label.color else { throw unsavable("label \(label.name) has no color") }
                output.textElement(
                    "label", attributes: [("id", "label-\(label.index)"), ("color", color)], text: label.name, level: 2)
            }
        }
        output.container("pools", level: 1, isEmpty: store.pools.isEmpty) { output in
            for pool in store.pools.values { write(pool, into: &output) }
        }
        writeProperties(store.globalProperties, vmClass: nil, level: 1, into: &output)
        try output.container("domains", level: 1, isEmpty: domains.isEmpty) { output in
            for domain in domains { try write(domain, into: &output) }
        }
        output.close("qubes", level: 0)
        return output.bytes
    }

    /// Writes one `<pool>` element at nesting level 2.
    public static func write(_ pool: Pool, into output: inout XMLOutput) {
        output.emptyElement("pool", attributes: pool.attributes.map { ($0.name, $0.value) }, level: 2)
    }

    static func unsavable(_ detail: String) -> StoreError {
        StoreError(.typeError, "Argument must be bytes or unicode, got 'NoneType' (\(detail))")
    }

    private static func writeProperties(_ properties: [String: String], vmClass: VMClass?, level: Int, into output: inout XMLOutput) {
        let names = Schema.sortedForSave(properties.keys, of: vmClass)
        output.container("properties", level: level, isEmpty: names.isEmpty) { output in
            for name in names {
                output.textElement("property", name: name, text: properties[name] ?? "", level: level + 1)
            }
        }
    }

    /// Writes one `<domain>` element at nesting level 2.
    /// - Parameters:
    ///   - withQID: `false` leaves out the `id=` attribute and the `qid` property (shard files).
    ///   - sortedTags: write tags in code-point order instead of insertion order (shard files).
    public static func write(
        _ domain: Domain, withQID: Bool = true, sortedTags: Bool = false, into output: inout XMLOutput
    ) throws {
        var attributes = [("class", domain.vmClass.rawValue)]
        var properties = domain.explicitProperties
        if withQID {
            attributes.insert(("id", "domain-\(domain.qid)"), at: 0)
        } else {
            properties["qid"] = nil
        }
        output.open("domain", attributes: attributes, level: 2)
        writeProperties(properties, vmClass: domain.vmClass, level: 3, into: &output)
        output.container("features", level: 3, isEmpty: domain.features.isEmpty) { output in
            for (name, value) in domain.features {
                output.textElement("feature", name: name.value, text: value, level: 4)
            }
        }
        output.container("tags", level: 3, isEmpty: domain.tags.isEmpty) { output in
            let tags = sortedTags ? domain.tags.sorted() : Array(domain.tags)
            for tag in tags { output.emptyElement("tag", name: tag.value, level: 4) }
        }
        for (deviceClass, assignments) in domain.devices {
            try output.container("devices", attributes: [("class", deviceClass)], level: 3, isEmpty: assignments.isEmpty) { output in
                for device in assignments {
                    let attributes = [
                        ("backend-domain", device.backendDomain ?? "*"), ("id", device.port), ("mode", device.mode.rawValue),
                        ("identity", device.identity),
                    ]
                    try output.container("device", attributes: attributes, level: 4, isEmpty: device.options.isEmpty) { output in
                        for option in device.options {
                            guard let name = option.name else {
                                throw unsavable("qube \(domain.name) has a device option without name")
                            }
                            output.textElement("option", name: name, text: option.value, level: 5)
                        }
                    }
                }
            }
        }
        if domain.vmClass.hasVolumes {
            output.container("volume-config", level: 3, isEmpty: domain.volumes.isEmpty) { output in
                for volume in domain.volumes {
                    output.emptyElement("volume", attributes: volume.savedAttributes, level: 4)
                }
            }
        }
        output.close("domain", level: 2)
    }
}

/// A byte buffer with lxml's pretty-printing rules, shared by every writer
/// of qubes.xml-style files. Element names are literals; attribute names
/// and values, and text, are copied in runs between the bytes that need
/// escaping.
public struct XMLOutput: Sendable {
    public var bytes: [UInt8] = []

    public init() {}

    public mutating func indent(_ level: Int) {
        let count = level * 2
        guard count <= Self.spaces.utf8CodeUnitCount else {
            for _ in 0..<count { bytes.append(0x20) }
            return
        }
        put(UnsafeBufferPointer(start: Self.spaces.utf8Start, count: count))
    }

    /// The indentation of the deepest levels qubes.xml-style files have, in one run.
    private static let spaces: StaticString = "                        "

    public mutating func append(_ text: StaticString) {
        put(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private mutating func copy(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ put($0) }) == nil {
            var text = text
            text.withUTF8 { put($0) }
        }
    }

    /// Appends a run of bytes.
    @inline(__always)
    private mutating func put(_ run: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: run) }

    public mutating func startTag(_ name: StaticString, _ attributes: [(String, String)]) {
        bytes.append(UInt8(ascii: "<"))
        append(name)
        for (key, value) in attributes { attribute(key, value) }
    }

    /// ` key="value"`, the value escaped.
    private mutating func attribute(_ key: String, _ value: String) {
        bytes.append(0x20)
        copy(key)
        append("=\"")
        escape(value, inAttribute: true)
        bytes.append(UInt8(ascii: "\""))
    }

    /// `<name name="value"`: the start tag of the elements named by their `name=` attribute.
    private mutating func startTag(_ name: StaticString, name value: String) {
        bytes.append(UInt8(ascii: "<"))
        append(name)
        append(" name=\"")
        escape(value, inAttribute: true)
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func open(_ name: StaticString, attributes: [(String, String)] = [], level: Int) {
        indent(level)
        startTag(name, attributes)
        append(">\n")
    }

    public mutating func close(_ name: StaticString, level: Int) {
        indent(level)
        append("</")
        append(name)
        append(">\n")
    }

    public mutating func emptyElement(_ name: StaticString, attributes: [(String, String)], level: Int) {
        indent(level)
        startTag(name, attributes)
        append("/>\n")
    }

    /// `<name a="…" b="…"/>` from parsed attributes, in their order.
    public mutating func emptyElement(_ name: StaticString, attributes: [XMLNode.Attribute], level: Int) {
        indent(level)
        bytes.append(UInt8(ascii: "<"))
        append(name)
        for attribute in attributes { self.attribute(attribute.name, attribute.value) }
        append("/>\n")
    }

    /// `<name name="value"/>`.
    public mutating func emptyElement(_ name: StaticString, name value: String, level: Int) {
        indent(level)
        startTag(name, name: value)
        append("/>\n")
    }

    public mutating func textElement(_ name: StaticString, attributes: [(String, String)], text: String, level: Int) {
        indent(level)
        startTag(name, attributes)
        endTextElement(name, text: text)
    }

    /// `<name name="value">text</name>`.
    public mutating func textElement(_ name: StaticString, name value: String, text: String, level: Int) {
        indent(level)
        startTag(name, name: value)
        endTextElement(name, text: text)
    }

    private mutating func endTextElement(_ name: StaticString, text: String) {
        bytes.append(UInt8(ascii: ">"))
        escape(text, inAttribute: false)
        append("</")
        append(name)
        append(">\n")
    }

    /// An element with children, written self-closing when it has none.
    public mutating func container(
        _ name: StaticString, attributes: [(String, String)] = [], level: Int, isEmpty: Bool,
        _ body: (inout XMLOutput) throws -> Void
    ) rethrows {
        if isEmpty {
            emptyElement(name, attributes: attributes, level: level)
            return
        }
        open(name, attributes: attributes, level: level)
        try body(&self)
        close(name, level: level)
    }

    /// lxml's escaping: `& < >` and CR always; in attributes also `"`, TAB and LF.
    private mutating func escape(_ text: String, inAttribute: Bool) {
        // The bit of `escapeClass` that marks the bytes replaced here.
        let escapedFrom: UInt8 = inAttribute ? 1 : 1 << 1
        if text.utf8.withContiguousStorageIfAvailable({ escape($0, escapedFrom: escapedFrom) }) == nil {
            var text = text
            text.withUTF8 { escape($0, escapedFrom: escapedFrom) }
        }
    }

    private mutating func escape(_ utf8: UnsafeBufferPointer<UInt8>, escapedFrom: UInt8) {
        Self.escapeClass.withUnsafeBufferPointer { classes in
            var run = 0
            for index in utf8.indices where classes[Int(utf8[index])] & escapedFrom != 0 {
                let replacement: StaticString
                switch utf8[index] {
                case UInt8(ascii: "&"): replacement = "&amp;"
                case UInt8(ascii: "<"): replacement = "&lt;"
                case UInt8(ascii: ">"): replacement = "&gt;"
                case 0x0D: replacement = "&#13;"
                case UInt8(ascii: "\""): replacement = "&quot;"
                case 0x09: replacement = "&#9;"
                default: replacement = "&#10;"
                }
                put(UnsafeBufferPointer(rebasing: utf8[run..<index]))
                append(replacement)
                run = index + 1
            }
            put(UnsafeBufferPointer(rebasing: utf8[run...]))
        }
    }

    /// Per byte, where `escape` replaces it: bit 0 in attributes, bit 1 in text.
    private static let escapeClass: [UInt8] = (0...255).map { byte in
        switch byte {
        case 0x26, 0x3C, 0x3E, 0x0D: return 0b11
        case 0x22, 0x09, 0x0A: return 0b01
        default: return 0
        }
    }
}
