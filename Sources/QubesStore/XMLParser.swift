import Glibc

/// The byte-level parser behind `XMLReader`. Input is already known to be
/// valid UTF-8 made of XML characters.
struct Parser {
    private enum Entity {
        case `internal`([UInt8])
        case external
    }

    private struct Frame {
        /// The element's index in `records`.
        var index: Int
        /// Whether a child node ended the collection of the element's text.
        var textDone: Bool
    }

    private let buffer: UnsafeBufferPointer<UInt8>
    private let limits: XMLReader.Limits
    private var position = 0
    private var entities: [String: Entity] = [:]
    private var expandedBytes = 0
    /// Whether a `<!DOCTYPE>` was read.
    private(set) var sawDoctype = false
    /// Text of the element currently collecting its `.text`.
    private var scratch: [UInt8] = []
    /// Recently made strings of names and short attribute values, by a hash
    /// of their bytes: where in the input they were read, and the string.
    private var internCache: [(range: Range<Int>, string: String)?] = Array(repeating: nil, count: 509)
    /// Longest attribute value that goes through `internCache`.
    private static let internedValueLength = 15
    /// The elements read so far, in document order (see `XMLElementTable`).
    private var records: [XMLElementTable.Record] = []
    private var attributes: [XMLNode.Attribute] = []

    init(buffer: UnsafeBufferPointer<UInt8>, limits: XMLReader.Limits) {
        self.buffer = buffer
        self.limits = limits
    }

    // MARK: - Errors and small helpers

    private func error(_ message: String, at offset: Int? = nil) -> StoreError {
        XMLReader.syntaxError(message, at: offset ?? position, in: Array(buffer))
    }

    private var atEnd: Bool { position >= buffer.count }

    private func peek(_ offset: Int = 0) -> UInt8 {
        let index = position + offset
        return index < buffer.count ? buffer[index] : 0
    }

    private func lookingAt(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= buffer.count else { return false }
        let start = literal.utf8Start
        for index in 0..<count where buffer[position + index] != start[index] { return false }
        return true
    }

    private mutating func expect(_ literal: StaticString, _ message: @autoclosure () -> String) throws {
        guard lookingAt(literal) else { throw error(message()) }
        position += literal.utf8CodeUnitCount
    }

    @discardableResult
    private mutating func skipSpace() -> Bool {
        let start = position
        var end = start
        while end < buffer.count && XMLReader.isSpace(buffer[end]) { end += 1 }
        position = end
        return end > start
    }

    private func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
    }

    private static func isNameStart(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte == 0x3A
            || byte >= 0x80
    }

    private static func isNameChar(_ byte: UInt8) -> Bool {
        isNameStart(byte) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
    }

    /// Reads a name; names repeat, so each one becomes a `String` once.
    private mutating func parseName(_ what: String) throws -> String {
        intern(try scanName(what))
    }

    /// The string of the bytes at `range`, reused from an earlier occurrence
    /// of the same bytes when one is still in the small cache.
    private mutating func intern(_ range: Range<Int>) -> String {
        intern(range, slot: internSlot(range))
    }

    /// The `internCache` slot of the bytes at `range`.
    private func internSlot(_ range: Range<Int>) -> Int {
        var hash = UInt32(truncatingIfNeeded: range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            hash = (hash ^ UInt32(buffer[index])) &* 16_777_619
            index &+= 1
        }
        return Int(hash % UInt32(internCache.count))
    }

    private mutating func intern(_ range: Range<Int>, slot: Int) -> String {
        let count = range.count
        if let cached = internCache[slot], cached.range.count == count,
            memcmp(buffer.baseAddress! + cached.range.lowerBound, buffer.baseAddress! + range.lowerBound, count) == 0
        {
            return cached.string
        }
        let string = string(range)
        internCache[slot] = (range, string)
        return string
    }

    /// Skips a name at the current position and returns where its bytes are.
    private mutating func scanName(_ what: String) throws -> Range<Int> {
        let start = position
        guard !atEnd, Self.isNameStart(buffer[position]) else { throw error("\(what): invalid name") }
        var end = start + 1
        while end < buffer.count && Self.isNameChar(buffer[end]) { end += 1 }
        position = end
        return start..<end
    }

    /// Whether the end tag name at `range` closes the start tag `name` at
    /// `offset`: compared byte by byte first, without making a string.
    private func endTag(_ range: Range<Int>, matches name: String, startTagAt offset: Int) -> Bool {
        let start = offset + 1
        let count = name.utf8.count
        if range.count == count && buffer[range].elementsEqual(buffer[start..<(start + count)]) { return true }
        return string(range) == name
    }

    // MARK: - Document

    mutating func parseDocument() throws -> XMLNode {
        if lookingAt("<?xml") && XMLReader.isSpace(peek(5)) {
            try skipProcessingInstruction()
        }
        while true {
            skipSpace()
            if atEnd { throw error("Document is empty") }
            if lookingAt("<!--") {
                try skipComment()
            } else if lookingAt("<?") {
                try skipProcessingInstruction()
            } else if lookingAt("<!DOCTYPE") {
                guard limits.allowsDoctype else { throw error("DOCTYPE is not allowed in this input") }
                guard !sawDoctype else { throw error("a second DOCTYPE is not allowed") }
                sawDoctype = true
                try parseDoctype()
            } else if peek() == UInt8(ascii: "<") {
                break
            } else {
                throw error("Start tag expected, '<' not found")
            }
        }
        let root = try parseElementTree()
        while true {
            skipSpace()
            if atEnd { break }
            if lookingAt("<!--") {
                try skipComment()
            } else if lookingAt("<?") {
                try skipProcessingInstruction()
            } else {
                throw error("Extra content at the end of the document")
            }
        }
        return root
    }

    private mutating func skipComment() throws {
        let start = position
        position += 4
        while !atEnd {
            if lookingAt("--") {
                guard peek(2) == UInt8(ascii: ">") else { throw error("Double hyphen within comment") }
                position += 3
                return
            }
            position += 1
        }
        throw error("Comment not terminated", at: start)
    }

    private mutating func skipProcessingInstruction() throws {
        let start = position
        position += 2
        _ = try parseName("ParsePI")
        while !atEnd {
            if lookingAt("?>") {
                position += 2
                return
            }
            position += 1
        }
        throw error("PI not terminated", at: start)
    }

    // MARK: - DTD

    private mutating func parseDoctype() throws {
        position += 9
        guard skipSpace() else { throw error("Space required after 'DOCTYPE'") }
        _ = try parseName("DOCTYPE")
        skipSpace()
        if lookingAt("SYSTEM") || lookingAt("PUBLIC") {
            try skipExternalID()
            skipSpace()
        }
        if peek() == UInt8(ascii: "[") {
            position += 1
            try parseInternalSubset()
            skipSpace()
        }
        try expect(">", "DOCTYPE improperly terminated")
    }

    private mutating func skipExternalID() throws {
        let isPublic = lookingAt("PUBLIC")
        position += 6
        guard skipSpace() else { throw error("Space required after SYSTEM or PUBLIC") }
        _ = try parseQuoted()
        if isPublic {
            skipSpace()
            _ = try parseQuoted()
        }
    }

    private mutating func parseQuoted() throws -> Range<Int> {
        let quote = peek()
        guard quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else { throw error("quoted string expected") }
        position += 1
        let start = position
        while !atEnd && buffer[position] != quote { position += 1 }
        guard !atEnd else { throw error("unterminated quoted string", at: start) }
        let range = start..<position
        position += 1
        return range
    }

    private mutating func parseInternalSubset() throws {
        while true {
            skipSpace()
            if atEnd { throw error("DOCTYPE internal subset not terminated") }
            if peek() == UInt8(ascii: "]") {
                position += 1
                return
            }
            if lookingAt("<!--") {
                try skipComment()
            } else if lookingAt("<?") {
                try skipProcessingInstruction()
            } else if lookingAt("<!ENTITY") {
                try parseEntityDeclaration()
            } else if lookingAt("<!ELEMENT") || lookingAt("<!ATTLIST") || lookingAt("<!NOTATION") {
                try skipMarkupDeclaration()
            } else if peek() == UInt8(ascii: "%") {
                throw error("parameter entity references are not supported")
            } else {
                throw error("internal subset: markup declaration expected")
            }
        }
    }

    private mutating func skipMarkupDeclaration() throws {
        let start = position
        position += 2
        while !atEnd {
            let byte = buffer[position]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                _ = try parseQuoted()
                continue
            }
            position += 1
            if byte == UInt8(ascii: ">") { return }
        }
        throw error("markup declaration not terminated", at: start)
    }

    private mutating func parseEntityDeclaration() throws {
        position += 8
        guard skipSpace() else { throw error("Space required after '<!ENTITY'") }
        if peek() == UInt8(ascii: "%") { throw error("parameter entities are not supported") }
        let name = try parseName("EntityDecl")
        guard skipSpace() else { throw error("Space required after the entity name") }
        let entity: Entity
        if lookingAt("SYSTEM") || lookingAt("PUBLIC") {
            try skipExternalID()
            skipSpace()
            if lookingAt("NDATA") {
                position += 5
                skipSpace()
                _ = try parseName("NDATA")
            }
            entity = .external
        } else {
            let range = try parseQuoted()
            var value: [UInt8] = []
            var index = range.lowerBound
            while index < range.upperBound {
                let byte = buffer[index]
                if byte == UInt8(ascii: "%") {
                    throw error("parameter entity references are not supported", at: index)
                }
                if byte == UInt8(ascii: "&") && index + 1 < range.upperBound && buffer[index + 1] == UInt8(ascii: "#") {
                    let saved = position
                    position = index
                    try appendCharacterReference(into: &value)
                    index = position
                    position = saved
                    continue
                }
                value.append(byte)
                index += 1
            }
            entity = .internal(value)
        }
        skipSpace()
        try expect(">", "EntityDecl: entity \(name) not terminated")
        if entities[name] == nil { entities[name] = entity }
    }

    // MARK: - References

    /// Parses `&#N;` or `&#xH;` at the current position and appends its UTF-8.
    private mutating func appendCharacterReference(into output: inout [UInt8]) throws {
        let start = position
        guard let end = buffer[start...].firstIndex(of: UInt8(ascii: ";")) else {
            throw error("xmlParseCharRef: invalid value", at: start)
        }
        position = end + 1
        try Self.appendCharacterReference(buffer[(start + 2)..<end], into: &output) { message in
            error(message, at: start)
        }
    }

    /// Appends the character that the digits of a character reference
    /// (`#` already removed, `x` kept) name.
    private static func appendCharacterReference(
        _ digits: some Collection<UInt8>, into output: inout [UInt8], error: (String) -> StoreError
    ) throws {
        let hex = digits.first == UInt8(ascii: "x")
        var value: UInt32 = 0
        var count = 0
        for byte in digits.dropFirst(hex ? 1 : 0) {
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x61...0x66 where hex: digit = UInt32(byte - 0x61 + 10)
            case 0x41...0x46 where hex: digit = UInt32(byte - 0x41 + 10)
            default: throw error("xmlParseCharRef: invalid \(hex ? "hexadecimal" : "decimal") value")
            }
            value = value > 0x10FFFF ? value : value * (hex ? 16 : 10) + digit
            count += 1
        }
        guard count > 0 else { throw error("xmlParseCharRef: invalid value") }
        let allowed =
            value == 0x9 || value == 0xA || value == 0xD || (0x20...0xD7FF).contains(value)
            || (0xE000...0xFFFD).contains(value) || (0x10000...0x10FFFF).contains(value)
        guard allowed, let scalar = Unicode.Scalar(value) else {
            throw error("xmlParseCharRef: invalid xmlChar value \(value)")
        }
        output.append(contentsOf: String(Character(scalar)).utf8)
    }

    /// Parses a reference at the current position (`&` …`;`) and appends its
    /// replacement text; in an attribute value, white space becomes spaces.
    private mutating func appendReference(into output: inout [UInt8], inAttribute: Bool) throws {
        if peek(1) == UInt8(ascii: "#") {
            try appendCharacterReference(into: &output)
            return
        }
        let start = position
        position += 1
        let name = try parseName("EntityRef")
        guard peek() == UInt8(ascii: ";") else { throw error("EntityRef: expecting ';'", at: start) }
        position += 1
        try appendEntity(named: name, into: &output, inAttribute: inAttribute, at: start, depth: 0)
    }

    private mutating func appendEntity(
        named name: String, into output: inout [UInt8], inAttribute: Bool, at offset: Int, depth: Int
    ) throws {
        switch name {
        case "lt": output.append(UInt8(ascii: "<")); return
        case "gt": output.append(UInt8(ascii: ">")); return
        case "amp": output.append(UInt8(ascii: "&")); return
        case "apos": output.append(UInt8(ascii: "'")); return
        case "quot": output.append(UInt8(ascii: "\"")); return
        default: break
        }
        guard case .internal(let replacement) = entities[name] else {
            throw error("Entity '\(name)' not defined", at: offset)
        }
        guard depth < 40 else { throw error("Detected an entity reference loop", at: offset) }
        var index = 0
        while index < replacement.count {
            let byte = replacement[index]
            if byte == UInt8(ascii: "<") {
                throw error("Entity '\(name)': markup inside entities is not supported", at: offset)
            }
            if byte == UInt8(ascii: "&") {
                guard let end = replacement[index...].firstIndex(of: UInt8(ascii: ";")) else {
                    throw error("Entity '\(name)': EntityRef: expecting ';'", at: offset)
                }
                let inner = replacement[(index + 1)..<end]
                if inner.first == UInt8(ascii: "#") {
                    try Self.appendCharacterReference(inner.dropFirst(), into: &output) { message in
                        error("Entity '\(name)': \(message)", at: offset)
                    }
                } else {
                    try appendEntity(
                        named: String(decoding: inner, as: UTF8.self), into: &output, inAttribute: inAttribute,
                        at: offset, depth: depth + 1)
                }
                index = end + 1
                continue
            }
            output.append(inAttribute && XMLReader.isSpace(byte) ? 0x20 : byte)
            expandedBytes += 1
            index += 1
        }
        if expandedBytes > limits.maxEntityExpansion {
            throw error(
                "Maximum entity amplification factor exceeded (entities expand to more than \(limits.maxEntityExpansion) bytes)",
                at: offset)
        }
    }

    // MARK: - Elements

    /// Parses the start tag at the current position.
    /// Parses the start tag at the current position into a new record whose
    /// `end` is set when the element closes; returns the record's index.
    private mutating func parseStartTag() throws -> (index: Int, selfClosing: Bool) {
        let offset = position
        position += 1
        let name = try parseName("StartTag")
        let attributeStart = attributes.count
        while true {
            let spaced = skipSpace()
            let byte = peek()
            if byte == UInt8(ascii: ">") || byte == UInt8(ascii: "/") {
                position += 1
                let selfClosing = byte == UInt8(ascii: "/")
                if selfClosing { try expect(">", "Couldn't find end of Start Tag \(name)") }
                let index = records.count
                records.append(
                    XMLElementTable.Record(
                        name: name, text: nil, offset: offset, attributeStart: Int32(attributeStart),
                        attributeEnd: Int32(attributes.count), end: Int32(index + 1)))
                return (index, selfClosing)
            }
            guard !atEnd else { throw error("Couldn't find end of Start Tag \(name)", at: offset) }
            guard spaced else { throw error("attributes construct error") }
            let attributePosition = position
            let attributeName = try parseName("AttName")
            skipSpace()
            try expect("=", "Specification mandates value for attribute \(attributeName)")
            skipSpace()
            let value = try parseAttributeValue(attributeName)
            for existing in attributes[attributeStart...] where existing.name == attributeName {
                throw error("Attribute \(attributeName) redefined", at: attributePosition)
            }
            attributes.append(XMLNode.Attribute(name: attributeName, value: value))
        }
    }

    private mutating func parseAttributeValue(_ name: String) throws -> String {
        let quote = peek()
        guard quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") else {
            throw error("AttValue: \" or ' expected")
        }
        let start = position + 1
        var end = start
        var plain = true
        while end < buffer.count {
            let byte = buffer[end]
            if byte == quote { break }
            if byte == UInt8(ascii: "<") {
                position = end
                throw error("Unescaped '<' not allowed in attributes values")
            }
            if byte == UInt8(ascii: "&") || byte == 0x09 || byte == 0x0A || byte == 0x0D { plain = false }
            end += 1
        }
        guard end < buffer.count else { throw error("AttValue: ' expected", at: start) }
        position = end + 1
        if plain {
            guard end - start <= limits.maxValueLength else { throw valueTooLong(name, at: start) }
            return end - start <= Self.internedValueLength ? intern(start..<end) : string(start..<end)
        }
        var value: [UInt8] = []
        var index = start
        while index < end {
            let byte = buffer[index]
            if byte == UInt8(ascii: "&") {
                let saved = position
                position = index
                try appendReference(into: &value, inAttribute: true)
                index = position
                position = saved
            } else if byte == 0x0D {
                value.append(0x20)
                index += index + 1 < end && buffer[index + 1] == 0x0A ? 2 : 1
            } else {
                value.append(byte == 0x09 || byte == 0x0A ? 0x20 : byte)
                index += 1
            }
            if value.count > limits.maxValueLength { throw valueTooLong(name, at: start) }
        }
        return String(decoding: value, as: UTF8.self)
    }

    private func valueTooLong(_ name: String, at offset: Int) -> StoreError {
        error("value of \(name) is longer than the limit of \(limits.maxValueLength) bytes", at: offset)
    }

    /// Appends character data (with line ends normalised) to `scratch`.
    private mutating func collectText(_ range: Range<Int>) {
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = buffer[index]
            if byte == 0x0D {
                scratch.append(0x0A)
                index += index + 1 < range.upperBound && buffer[index + 1] == 0x0A ? 2 : 1
            } else {
                scratch.append(byte)
                index += 1
            }
        }
    }

    /// Ends the collection of the text of the innermost open element.
    private mutating func finishText(of stack: inout [Frame]) {
        let last = stack.count - 1
        guard !stack[last].textDone else { return }
        stack[last].textDone = true
        if !scratch.isEmpty { records[stack[last].index].text = String(decoding: scratch, as: UTF8.self) }
    }

    /// The table of the elements read, with the root at index 0.
    private mutating func finishTable() -> XMLNode {
        XMLNode(table: XMLElementTable(records: records, attributes: attributes), index: 0)
    }

    private mutating func parseElementTree() throws -> XMLNode {
        records.reserveCapacity(buffer.count / 64)
        attributes.reserveCapacity(buffer.count / 64)
        let (root, rootClosed) = try parseStartTag()
        if rootClosed { return finishTable() }
        var stack: [Frame] = [Frame(index: root, textDone: false)]
        scratch.removeAll(keepingCapacity: true)
        while true {
            let textStart = position
            var textEnd = textStart
            while textEnd < buffer.count {
                let byte = buffer[textEnd]
                if byte == UInt8(ascii: "<") || byte == UInt8(ascii: "&") { break }
                if byte == UInt8(ascii: ">") && textEnd >= 2 && buffer[textEnd - 1] == UInt8(ascii: "]")
                    && buffer[textEnd - 2] == UInt8(ascii: "]")
                {
                    position = textEnd
                    throw error("Sequence ']]>' not allowed in content")
                }
                textEnd += 1
            }
            position = textEnd
            let collecting = !stack[stack.count - 1].textDone
            if collecting && position > textStart {
                collectText(textStart..<position)
                try checkTextLength()
            }
            if atEnd { throw error("Premature end of data in tag \(records[stack[stack.count - 1].index].name)") }
            if buffer[position] == UInt8(ascii: "&") {
                var expansion: [UInt8] = []
                try appendReference(into: &expansion, inAttribute: false)
                if collecting {
                    scratch.append(contentsOf: expansion)
                    try checkTextLength()
                }
            } else if lookingAt("</") {
                let tagStart = position
                position += 2
                let nameRange = try scanName("EndTag")
                skipSpace()
                let open = records[stack[stack.count - 1].index]
                guard endTag(nameRange, matches: open.name, startTagAt: open.offset) else {
                    throw error(
                        "Opening and ending tag mismatch: \(open.name) and \(string(nameRange))", at: tagStart)
                }
                try expect(">", "EndTag: '</' not terminated")
                finishText(of: &stack)
                scratch.removeAll(keepingCapacity: true)
                let frame = stack.removeLast()
                records[frame.index].end = Int32(records.count)
                if stack.isEmpty { return finishTable() }
            } else if lookingAt("<!--") {
                finishText(of: &stack)
                try skipComment()
            } else if lookingAt("<![CDATA[") {
                position += 9
                let start = position
                while !atEnd && !lookingAt("]]>") { position += 1 }
                guard !atEnd else { throw error("CData section not finished", at: start) }
                if !stack[stack.count - 1].textDone {
                    collectText(start..<position)
                    try checkTextLength()
                }
                position += 3
            } else if lookingAt("<?") {
                finishText(of: &stack)
                try skipProcessingInstruction()
            } else if lookingAt("<!") {
                throw error("unexpected markup declaration in content")
            } else {
                finishText(of: &stack)
                let (index, closed) = try parseStartTag()
                guard stack.count < limits.maxDepth else {
                    throw error(
                        "Excessive depth in document: \(limits.maxDepth), more than the limit", at: records[index].offset)
                }
                if !closed {
                    stack.append(Frame(index: index, textDone: false))
                    scratch.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    private func checkTextLength() throws {
        if scratch.count > limits.maxValueLength {
            throw error("Resource limit exceeded: text node longer than \(limits.maxValueLength) bytes")
        }
    }
}
