import Glibc

/// The byte-level parser behind `XMLReader`. Input is already known to be
/// valid UTF-8 made of XML characters.
struct Parser {
    enum Entity {
        case `internal`([UInt8])
        case external
    }

    struct Frame {
        /// The element's index in `records`.
        var index: Int
        /// Whether a child node ended the collection of the element's text.
        var textDone: Bool
    }

    let buffer: UnsafeBufferPointer<UInt8>
    let limits: XMLReader.Limits
    var position = 0
    var entities: [String: Entity] = [:]
    var expandedBytes = 0
    /// Whether a `<!DOCTYPE>` was read.
    var sawDoctype = false
    /// Text of the element currently collecting its `.text`.
    var scratch: [UInt8] = []
    /// Recently made strings of names and short attribute values, by a hash
    /// of their bytes: where in the input they were read, and the string.
    var internCache: [(range: Range<Int>, string: String)?] = Array(repeating: nil, count: 509)
    /// Longest attribute value that goes through `internCache`.
    static let internedValueLength = 15
    /// The elements read so far, in document order (see `XMLElementTable`).
    var records: [XMLElementTable.Record] = []
    var attributes: [XMLNode.Attribute] = []

    init(buffer: UnsafeBufferPointer<UInt8>, limits: XMLReader.Limits) {
        self.buffer = buffer
        self.limits = limits
    }

    // MARK: - Errors and small helpers

    func error(_ message: String, at offset: Int? = nil) -> StoreError {
        XMLReader.syntaxError(message, at: offset ?? position, in: Array(buffer))
    }

    var atEnd: Bool { position >= buffer.count }

    func peek(_ offset: Int = 0) -> UInt8 {
        let index = position + offset
        return index < buffer.count ? buffer[index] : 0
    }

    func lookingAt(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= buffer.count else { return false }
        let start = literal.utf8Start
        for index in 0..<count where buffer[position + index] != start[index] { return false }
        return true
    }

    mutating func expect(_ literal: StaticString, _ message: @autoclosure () -> String) throws {
        guard lookingAt(literal) else { throw error(message()) }
        position += literal.utf8CodeUnitCount
    }

    @discardableResult
    mutating func skipSpace() -> Bool {
        let start = position
        var end = start
        while end < buffer.count && XMLReader.isSpace(buffer[end]) { end += 1 }
        position = end
        return end > start
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
    }

    static func isNameStart(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || byte == 0x3A
            || byte >= 0x80
    }

    static func isNameChar(_ byte: UInt8) -> Bool {
        isNameStart(byte) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
    }

    /// Reads a name; names repeat, so each one becomes a `String` once.
    mutating func parseName(_ what: String) throws -> String {
        intern(try scanName(what))
    }

    /// The string of the bytes at `range`, reused from an earlier occurrence
    /// of the same bytes when one is still in the small cache.
    mutating func intern(_ range: Range<Int>) -> String {
        intern(range, slot: internSlot(range))
    }

    /// The `internCache` slot of the bytes at `range`.
    func internSlot(_ range: Range<Int>) -> Int {
        var hash = UInt32(truncatingIfNeeded: range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            hash = (hash ^ UInt32(buffer[index])) &* 16_777_619
            index &+= 1
        }
        return Int(hash % UInt32(internCache.count))
    }

    mutating func intern(_ range: Range<Int>, slot: Int) -> String {
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
    mutating func scanName(_ what: String) throws -> Range<Int> {
        let start = position
        guard !atEnd, Self.isNameStart(buffer[position]) else { throw error("\(what): invalid name") }
        var end = start + 1
        while end < buffer.count && Self.isNameChar(buffer[end]) { end += 1 }
        position = end
        return start..<end
    }

    /// Whether the end tag name at `range` closes the start tag `name` at
    /// `offset`: compared byte by byte first, without making a string.
    func endTag(_ range: Range<Int>, matches name: String, startTagAt offset: Int) -> Bool {
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

    mutating func skipComment() throws {
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

    mutating func skipProcessingInstruction() throws {
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
}
