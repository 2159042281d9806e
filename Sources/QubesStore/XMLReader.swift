import LQCommon

/// One element of a parsed XML document: the subset qubes.xml needs.
///
/// `text` follows lxml's `.text`: the character data before the first child
/// node (element, comment or processing instruction), `nil` when there is
/// none, so `<x/>` and `<x></x>` read the same.
///
/// A node is a position in its document's element table: the whole tree is
/// two flat arrays, made and freed in one piece however many elements it has.
public struct XMLNode: Sendable {
    public struct Attribute: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    let table: XMLElementTable
    let index: Int

    private var record: XMLElementTable.Record { table.records[index] }

    public var name: String { record.name }
    public var attributes: ArraySlice<Attribute> { table.attributes[Int(record.attributeStart)..<Int(record.attributeEnd)] }
    public var children: Children { Children(table: table, parent: index) }
    public var text: String? { record.text }
    /// Byte offset of the element's `<` in the (UTF-8) document.
    public var offset: Int { record.offset }

    /// The value of the attribute `name`, if present.
    public func attribute(_ name: String) -> String? {
        for attribute in attributes where attribute.name == name { return attribute.value }
        return nil
    }

    /// The child elements called `name`, in document order.
    public func children(named name: String) -> [XMLNode] {
        children.filter { $0.name == name }
    }

    /// The child elements of a node, in document order.
    public struct Children: Collection, Sendable {
        public struct Index: Comparable, Sendable {
            let record: Int
            public static func < (left: Index, right: Index) -> Bool { left.record < right.record }
        }

        let table: XMLElementTable
        public let startIndex: Index
        public let endIndex: Index

        init(table: XMLElementTable, parent: Int) {
            self.table = table
            startIndex = Index(record: parent + 1)
            endIndex = Index(record: Int(table.records[parent].end))
        }

        public subscript(position: Index) -> XMLNode { XMLNode(table: table, index: position.record) }

        public func index(after position: Index) -> Index { Index(record: Int(table.records[position.record].end)) }
    }
}

/// The elements of a document in document order, each followed by its
/// descendants, with every attribute in one array.
final class XMLElementTable: Sendable {
    struct Record: Sendable {
        var name: String
        var text: String?
        var offset: Int
        var attributeStart: Int32
        var attributeEnd: Int32
        /// The index after the element's last descendant.
        var end: Int32
    }

    let records: [Record]
    let attributes: [XMLNode.Attribute]

    init(records: [Record], attributes: [XMLNode.Attribute]) {
        self.records = records
        self.attributes = attributes
    }
}

/// A parsed document: the root element and the bytes it came from (for
/// turning offsets into line and column).
public struct XMLDocument: Sendable {
    public var root: XMLNode
    /// The document as UTF-8, after any re-encoding.
    public var bytes: [UInt8]
    /// Whether the document had a `<!DOCTYPE>` (whose entities were expanded).
    public var hasDoctype: Bool
    /// The encoding the XML declaration named, if any.
    public var declaredEncoding: String?

    /// Line and column of a byte offset.
    public func location(of offset: Int) -> SourceLocation {
        XMLReader.location(of: offset, in: bytes)
    }
}

/// A strict, limited XML reader for the subset of XML 1.0 that qubes.xml
/// files use.
///
/// It reads what libxml2 (and so qubesd) reads — UTF-8 or Latin-1, a BOM, an
/// XML declaration, comments, processing instructions, CDATA, character and
/// entity references, and an internal DTD subset whose internal entities are
/// expanded — and refuses what qubesd refuses: external entities, characters
/// XML 1.0 forbids, excessive depth, entity amplification. `Limits.untrusted`
/// turns off the DTD entirely and tightens every limit for input written by
/// another qube.
public enum XMLReader {
    /// Resource limits; every input is checked against them before its data
    /// is used.
    public struct Limits: Sendable, Hashable {
        /// Largest input file, in bytes.
        public var maxFileSize: Int
        /// Deepest element nesting (the root element is depth 1).
        public var maxDepth: Int
        /// Longest single text or attribute value, in bytes.
        public var maxValueLength: Int
        /// Most bytes all entity expansions of the document may produce.
        public var maxEntityExpansion: Int
        /// Whether a `<!DOCTYPE>` (and thus user-defined entities) is allowed.
        public var allowsDoctype: Bool

        public init(maxFileSize: Int, maxDepth: Int, maxValueLength: Int, maxEntityExpansion: Int, allowsDoctype: Bool) {
            self.maxFileSize = maxFileSize
            self.maxDepth = maxDepth
            self.maxValueLength = maxValueLength
            self.maxEntityExpansion = maxEntityExpansion
            self.allowsDoctype = allowsDoctype
        }

        /// For the main store, written by qubesd: reads what qubesd reads.
        public static let store = Limits(
            maxFileSize: 256 << 20, maxDepth: 256, maxValueLength: 16 << 20, maxEntityExpansion: 1 << 20,
            allowsDoctype: true)
        /// For untrusted input such as shards: no DTD, small limits.
        public static let untrusted = Limits(
            maxFileSize: 16 << 20, maxDepth: 32, maxValueLength: 64 << 10, maxEntityExpansion: 0,
            allowsDoctype: false)
    }

    /// Parses `bytes` into a document.
    /// - Throws: `StoreError` of kind `.xmlSyntaxError` with line and column.
    /// - Complexity: O(n) in the size of the input plus entity expansion.
    public static func parse(_ bytes: [UInt8], limits: Limits = .store) throws -> XMLDocument {
        guard bytes.count <= limits.maxFileSize else {
            throw StoreError(
                .xmlSyntaxError, "file is \(bytes.count) bytes, more than the limit of \(limits.maxFileSize)")
        }
        var input = bytes
        if input.starts(with: [0xEF, 0xBB, 0xBF]) { input.removeFirst(3) }
        if input.starts(with: [0xFE, 0xFF]) || input.starts(with: [0xFF, 0xFE]) {
            throw StoreError(.xmlSyntaxError, "UTF-16 input is not supported", location: SourceLocation(line: 1, column: 1))
        }
        let encoding = try declaredEncoding(input)
        if let encoding {
            switch encoding.lowercased() {
            case "utf-8", "utf8", "us-ascii", "ascii":
                break
            case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1":
                input = latin1ToUTF8(input)
            default:
                throw StoreError(
                    .xmlSyntaxError, "unsupported encoding \(encoding)", location: SourceLocation(line: 1, column: 1))
            }
        }
        try validateCharacters(input)
        let (root, hasDoctype) = try input.withUnsafeBufferPointer { buffer in
            var parser = Parser(buffer: buffer, limits: limits)
            return (try parser.parseDocument(), parser.sawDoctype)
        }
        return XMLDocument(root: root, bytes: input, hasDoctype: hasDoctype, declaredEncoding: encoding)
    }

    static func location(of offset: Int, in bytes: [UInt8]) -> SourceLocation {
        var line = 1
        var lineStart = 0
        let end = min(offset, bytes.count)
        var index = 0
        while index < end {
            if bytes[index] == 0x0A {
                line += 1
                lineStart = index + 1
            }
            index += 1
        }
        return SourceLocation(line: line, column: end - lineStart + 1)
    }

    static func syntaxError(_ message: String, at offset: Int, in bytes: [UInt8]) -> StoreError {
        StoreError(.xmlSyntaxError, message, location: location(of: offset, in: bytes))
    }

    /// The `encoding` pseudo-attribute of a leading XML declaration.
    private static func declaredEncoding(_ bytes: [UInt8]) throws -> String? {
        guard bytes.starts(with: Array("<?xml".utf8)), bytes.count > 5, isSpace(bytes[5]) else { return nil }
        guard let end = bytes.firstRange(of: Array("?>".utf8)) else {
            throw syntaxError("parsing XML declaration: '?>' expected", at: 0, in: bytes)
        }
        let declaration = String(decoding: bytes[5..<end.lowerBound], as: UTF8.self)
        let parts = declaration.splitting(onSubstring: "encoding")
        guard parts.count > 1 else { return nil }
        let rest = parts[1].drop { $0 == " " || $0 == "=" || $0 == "\t" }
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        return String(rest.dropFirst().prefix { $0 != quote })
    }

    private static func latin1ToUTF8(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 8)
        for byte in bytes {
            if byte < 0x80 {
                output.append(byte)
            } else {
                output.append(0xC0 | (byte >> 6))
                output.append(0x80 | (byte & 0x3F))
            }
        }
        return output
    }

    /// Checks that `bytes` is UTF-8 and holds only characters XML 1.0 allows.
    private static func validateCharacters(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBufferPointer { buffer in
            let count = buffer.count
            var index = 0
            let raw = UnsafeRawBufferPointer(buffer)
            while index < count {
                // Fast path: eight printable ASCII bytes at once.
                if index + 8 <= count {
                    let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    let highBits: UInt64 = 0x8080_8080_8080_8080
                    let belowSpace = (word &- 0x2020_2020_2020_2020) & ~word & highBits
                    if word & highBits == 0 && belowSpace == 0 {
                        index += 8
                        continue
                    }
                }
                let byte = buffer[index]
                if byte < 0x80 {
                    if byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0D {
                        throw syntaxError(
                            "Char 0x\(String(byte, radix: 16, uppercase: true)) out of allowed range", at: index,
                            in: bytes)
                    }
                    index += 1
                    continue
                }
                let length: Int
                var scalar: UInt32
                switch byte {
                case 0xC2...0xDF: length = 2; scalar = UInt32(byte & 0x1F)
                case 0xE0...0xEF: length = 3; scalar = UInt32(byte & 0x0F)
                case 0xF0...0xF4: length = 4; scalar = UInt32(byte & 0x07)
                default: throw syntaxError("Invalid bytes in character encoding", at: index, in: bytes)
                }
                guard index + length <= count else {
                    throw syntaxError("Invalid bytes in character encoding", at: index, in: bytes)
                }
                for next in 1..<length {
                    let continuation = buffer[index + next]
                    guard continuation & 0xC0 == 0x80 else {
                        throw syntaxError("Invalid bytes in character encoding", at: index, in: bytes)
                    }
                    scalar = scalar << 6 | UInt32(continuation & 0x3F)
                }
                let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
                if scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar) {
                    throw syntaxError("Invalid bytes in character encoding", at: index, in: bytes)
                }
                if scalar == 0xFFFE || scalar == 0xFFFF {
                    throw syntaxError(
                        "Char 0x\(String(scalar, radix: 16, uppercase: true)) out of allowed range", at: index,
                        in: bytes)
                }
                index += length
            }
        }
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D
    }
}
