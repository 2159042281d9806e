import Glibc

/// A JSON value: the canonical dump (docs/qubes-xml.md, "Canonical JSON dump"), the policy
/// answers, the apply journal. Integers of any size as decimal text, object keys sorted by
/// code point when written.
public enum JSONValue: Sendable, Hashable {
    /// One member of an object. Keys are kept as given (no canonical
    /// equivalence), so distinct names that Swift would call equal stay apart.
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue

        public init(_ key: String, _ value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    case null
    case bool(Bool)
    /// An integer, as canonical decimal text.
    case integer(String)
    case string(String)
    case array([JSONValue])
    case members([Member])

    /// An optional string: `null` when `nil`.
    public static func string(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// An object from a dictionary (for keys that are plain ASCII names).
    public static func object(_ dictionary: [String: JSONValue]) -> JSONValue {
        .members(dictionary.map { Member($0.key, $0.value) })
    }

    /// The canonical bytes: one-space indentation, keys in code-point order,
    /// non-ASCII raw, a final newline.
    public func canonicalBytes() -> [UInt8] {
        var output: [UInt8] = []
        write(into: &output, level: 0)
        output.append(0x0A)
        return output
    }

    private func write(into output: inout [UInt8], level: Int) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let text): output.append(contentsOf: text.utf8)
        case .string(let text): Self.writeString(text, into: &output)
        case .array(let items):
            guard !items.isEmpty else { return output.append(contentsOf: "[]".utf8) }
            output.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.newline(into: &output, level: level + 1)
                item.write(into: &output, level: level + 1)
            }
            Self.newline(into: &output, level: level)
            output.append(UInt8(ascii: "]"))
        case .members(let members):
            guard !members.isEmpty else { return output.append(contentsOf: "{}".utf8) }
            output.append(UInt8(ascii: "{"))
            let sorted = members.sorted { codePointCompare($0.key, $1.key) < 0 }
            for (index, member) in sorted.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.newline(into: &output, level: level + 1)
                Self.writeString(member.key, into: &output)
                output.append(contentsOf: ": ".utf8)
                member.value.write(into: &output, level: level + 1)
            }
            Self.newline(into: &output, level: level)
            output.append(UInt8(ascii: "}"))
        }
    }

    private static func newline(into output: inout [UInt8], level: Int) {
        output.append(0x0A)
        for _ in 0..<level { output.append(0x20) }
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        // Most strings need no escape: their bytes go out in one piece.
        let copied = text.utf8.withContiguousStorageIfAvailable { bytes in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            output.append(contentsOf: bytes)
            return true
        }
        if copied == true { return output.append(UInt8(ascii: "\"")) }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: "\\\\".utf8)
            case 0x0A: output.append(contentsOf: "\\n".utf8)
            case 0x0D: output.append(contentsOf: "\\r".utf8)
            case 0x09: output.append(contentsOf: "\\t".utf8)
            case 0x08: output.append(contentsOf: "\\b".utf8)
            case 0x0C: output.append(contentsOf: "\\f".utf8)
            case 0..<0x20:
                output.append(contentsOf: "\\u00".utf8)
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0x0F)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// The value on one line, object keys in code-point order, non-ASCII kept raw.
    public func compactText() -> String {
        var output: [UInt8] = []
        writeCompact(into: &output)
        return String(decoding: output, as: UTF8.self)
    }

    private func writeCompact(into output: inout [UInt8]) {
        switch self {
        case .null: output += "null".utf8
        case .bool(let value): output += (value ? "true" : "false").utf8
        case .integer(let text): output += text.utf8
        case .string(let text): Self.appendQuoted(text, to: &output)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            for (offset, item) in items.enumerated() {
                if offset > 0 { output += ", ".utf8 }
                item.writeCompact(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .members(let members):
            output.append(UInt8(ascii: "{"))
            for (offset, member) in members.sorted(by: { codePointCompare($0.key, $1.key) < 0 }).enumerated() {
                if offset > 0 { output += ", ".utf8 }
                Self.appendQuoted(member.key, to: &output)
                output += ": ".utf8
                member.value.writeCompact(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `text` as a JSON string of the compact form (`\\"`, `\\\\`, `\\n`, other
    /// control characters and DEL as `\\u00XX`, everything else raw).
    public static func appendQuoted(_ text: String, to output: inout [UInt8]) {
        appendQuoted([text], separator: "", to: &output)
    }

    /// Appends each of `texts` as `appendQuoted` does, `separator` between
    /// them, in one pass into one buffer (most texts are short names: copying
    /// each into the output on its own would cost more than escaping it).
    public static func appendQuoted(_ texts: [String], separator: StaticString, to output: inout [UInt8]) {
        // At most 6 bytes per byte (`\\u00XX`), the quotes and a separator per text.
        var capacity = 0
        for text in texts { capacity += 6 * text.utf8.count + 2 + separator.utf8CodeUnitCount }
        // Borrowing the texts (no copy, no retain) and the table once matters: most texts are a few bytes.
        texts.withUnsafeBufferPointer { texts in
            escapedBytes.withUnsafeBufferPointer { escaped in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(capacity, 1)) { buffer in
                    let base = buffer.baseAddress!
                    var cursor = base
                    for index in texts.indices {
                        if index > 0 {
                            cursor.update(from: separator.utf8Start, count: separator.utf8CodeUnitCount)
                            cursor += separator.utf8CodeUnitCount
                        }
                        let write = { quote($0, at: cursor, escaped: escaped.baseAddress!) }
                        cursor = texts[index].utf8.withContiguousStorageIfAvailable(write) ?? {
                            var text = texts[index]
                            return text.withUTF8(write)
                        }()
                    }
                    output.append(contentsOf: UnsafeBufferPointer(start: base, count: cursor - base))
                }
            }
        }
    }

    /// Writes `bytes` quoted at `cursor`, which has room for 6 bytes per byte and 2;
    /// returns the position after the closing quote.
    private static func quote(_ bytes: UnsafeBufferPointer<UInt8>, at start: UnsafeMutablePointer<UInt8>,
                              escaped: UnsafePointer<Bool>) -> UnsafeMutablePointer<UInt8> {
        var cursor = start
        cursor.pointee = UInt8(ascii: "\"")
        cursor += 1
        for byte in bytes {
            guard escaped[Int(byte)] else {
                cursor.pointee = byte
                cursor += 1
                continue
            }
            cursor[0] = UInt8(ascii: "\\")
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "\n"):
                cursor[1] = byte == UInt8(ascii: "\n") ? UInt8(ascii: "n") : byte
                cursor += 2
            default:
                cursor[1] = UInt8(ascii: "u")
                cursor[2] = UInt8(ascii: "0")
                cursor[3] = UInt8(ascii: "0")
                cursor[4] = hexDigits[Int(byte >> 4)]
                cursor[5] = hexDigits[Int(byte & 0xF)]
                cursor += 6
            }
        }
        cursor.pointee = UInt8(ascii: "\"")
        return cursor + 1
    }

    /// Per byte, whether a JSON string writes it escaped: `"`, `\\`, control characters and DEL.
    private static let escapedBytes: [Bool] = (0...255).map { $0 < 0x20 || $0 == 0x7F || $0 == 0x22 || $0 == 0x5C }

    /// The value of an object's member `key` (compared byte for byte), `nil` for anything else.
    public func member(_ key: String) -> JSONValue? {
        guard case .members(let members) = self else { return nil }
        return members.first { bytesEqual($0.key, key) }?.value
    }
}

/// Three-way comparison by Unicode code point, as Python (and so qubesd and
/// qrexec) orders strings: the UTF-8 bytes (memcmp), then the length.
public func codePointCompare(_ lhs: String, _ rhs: String) -> Int {
    var left = lhs
    var right = rhs
    return left.withUTF8 { leftBytes in
        right.withUTF8 { rightBytes in
            let common = min(leftBytes.count, rightBytes.count)
            if common > 0 {
                let result = memcmp(leftBytes.baseAddress!, rightBytes.baseAddress!, common)
                if result != 0 { return Int(result) }
            }
            return leftBytes.count - rightBytes.count
        }
    }
}

/// Whether two strings have the same UTF-8 bytes (no Unicode equivalence, as qubesd and qrexec compare).
public func bytesEqual(_ lhs: String, _ rhs: String) -> Bool {
    lhs.utf8.count == rhs.utf8.count && codePointCompare(lhs, rhs) == 0
}
