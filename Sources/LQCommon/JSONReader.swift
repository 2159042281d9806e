/// Why a JSON text was refused: what, where (the line and column of the first problem) and what was expected there.
public struct JSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var location: SourceLocation
    public var expected: String

    public init(_ message: String, at location: SourceLocation, expected: String) {
        self.message = message
        self.location = location
        self.expected = expected
    }

    /// `file:line:column: message (expected …)`.
    public var description: String { "\(location.text(unnamed: "<json>")): \(message) (expected \(expected))" }
}

/// Strict JSON (system descriptions, call lists, the apply journal): RFC 8259
/// with limits, integers only (none of them has fractions), duplicate keys refused.
public enum JSONReader {
    /// The value of `bytes`; `file` names it in the errors.
    /// - Throws: `JSONError` with the line and column of the first problem.
    public static func parse(_ bytes: [UInt8], file: String? = nil, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        // The cursor reads the bytes through a pointer: no bounds check, no retain per byte in release builds.
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONError) -> JSONValue in
            var reader = Cursor(bytes: buffer, file: file, maxDepth: maxDepth)
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.index == buffer.count else { throw reader.error("text after the value", expected: "end of input") }
            return value
        }
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        let file: String?
        let maxDepth: Int
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, file: String?, maxDepth: Int) {
            self.bytes = bytes
            self.file = file
            self.maxDepth = maxDepth
        }

        func error(_ message: String, expected: String) -> JSONError {
            var line = 1
            var column = 1
            for byte in bytes[..<min(index, bytes.count)] {
                if byte == 0x0A { (line, column) = (line + 1, 1) } else { column += 1 }
            }
            return JSONError(message, at: SourceLocation(file: file, line: line, column: column), expected: expected)
        }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: String, _ value: JSONValue) throws(JSONError) -> JSONValue {
            guard bytes[index...].starts(with: literal.utf8) else { throw error("invalid literal", expected: literal) }
            index += literal.utf8.count
            return value
        }

        mutating func value(depth: Int) throws(JSONError) -> JSONValue {
            guard depth < maxDepth else { throw error("nested too deeply", expected: "at most \(maxDepth) levels") }
            skipSpace()
            guard index < bytes.count else { throw error("unexpected end of input", expected: "a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try integer()
            default: throw error("unexpected character", expected: "a value")
            }
        }

        mutating func object(depth: Int) throws(JSONError) -> JSONValue {
            index += 1
            var members: [JSONValue.Member] = []
            // Duplicates are looked for in the members while there are few, then in a set.
            var keys: Set<[UInt8]> = []
            skipSpace()
            if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .members(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key", expected: "a string") }
                let key = try string()
                let duplicate: Bool
                if members.count < 16 {
                    duplicate = members.contains { bytesEqual($0.key, key) }
                } else {
                    if keys.isEmpty { keys = Set(members.map { Array($0.key.utf8) }) }
                    duplicate = !keys.insert(Array(key.utf8)).inserted
                }
                guard !duplicate else { throw error("duplicate key '\(key)'", expected: "unique keys") }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'", expected: "':'") }
                index += 1
                members.append(JSONValue.Member(key, try value(depth: depth + 1)))
                guard try separator(closing: "}") else { return .members(members) }
            }
        }

        mutating func array(depth: Int) throws(JSONError) -> JSONValue {
            index += 1
            var items: [JSONValue] = []
            skipSpace()
            if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                items.append(try value(depth: depth + 1))
                guard try separator(closing: "]") else { return .array(items) }
            }
        }

        /// After an item: `true` for a comma, `false` for the closing bracket.
        mutating func separator(closing: Unicode.Scalar) throws(JSONError) -> Bool {
            skipSpace()
            guard index < bytes.count else { throw error("unexpected end of input", expected: "',' or '\(closing)'") }
            index += 1
            if bytes[index - 1] == UInt8(ascii: ",") { return true }
            if bytes[index - 1] == UInt8(closing.value) { return false }
            index -= 1
            throw error("unexpected character", expected: "',' or '\(closing)'")
        }

        mutating func integer() throws(JSONError) -> JSONValue {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digits = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
            guard index > digits, bytes[digits] != UInt8(ascii: "0") || index == digits + 1 else {
                throw error("invalid number", expected: "an integer")
            }
            if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
                throw error("fractional numbers are not used here", expected: "an integer")
            }
            return .integer(String(decoding: bytes[start..<index], as: UTF8.self))
        }

        mutating func string() throws(JSONError) -> String {
            index += 1
            // Most strings have no escape: read them straight from the input.
            let start = index
            var ascii = true
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 {
                ascii = ascii && bytes[index] < 0x80
                index += 1
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                index += 1
                let end = index - 1
                // ASCII needs no validation; anything else must be valid UTF-8.
                let run = UnsafeBufferPointer(rebasing: bytes[start..<end])
                let text = ascii ? String(decoding: run, as: UTF8.self) : String(validating: run, as: UTF8.self)
                guard let text else { throw error("invalid UTF-8", expected: "UTF-8 text") }
                return text
            }
            var output = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: output, as: UTF8.self) else { throw error("invalid UTF-8", expected: "UTF-8 text") }
                    return text
                case UInt8(ascii: "\\"):
                    try escape(into: &output)
                case 0..<0x20:
                    throw error("control character in a string", expected: "an escape")
                default:
                    output.append(byte)
                }
            }
            throw error("unterminated string", expected: "'\"'")
        }

        mutating func escape(into output: inout [UInt8]) throws(JSONError) {
            guard index < bytes.count else { throw error("unterminated escape", expected: "an escape") }
            let byte = bytes[index]
            index += 1
            let simple: [UInt8: UInt8] = [
                UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
                UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
            ]
            if let value = simple[byte] { return output.append(value) }
            guard byte == UInt8(ascii: "u") else { throw error("invalid escape", expected: "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u") }
            var scalar = try hex4()
            if (0xD800..<0xDC00).contains(scalar) {
                guard bytes[index...].starts(with: "\\u".utf8) else { throw error("lone surrogate", expected: "a surrogate pair") }
                index += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("lone surrogate", expected: "a low surrogate") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let value = Unicode.Scalar(scalar) else { throw error("lone surrogate", expected: "a valid code point") }
            output.append(contentsOf: String(Character(value)).utf8)
        }

        mutating func hex4() throws(JSONError) -> UInt32 {
            guard index + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
            else { throw error("invalid \\u escape", expected: "four hex digits") }
            index += 4
            return value
        }
    }
}
