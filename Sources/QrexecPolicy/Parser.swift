/// Lines and fields as qrexec reads them: Python text mode (`\n`, `\r\n` and
/// `\r` end a line), `str.strip()` and `str.split()` (any Unicode whitespace).
enum Lines {
    /// A whitespace-separated field and its 1-based byte column.
    struct Field: Sendable, Hashable {
        var text: String
        var column: Int
    }

    /// The code points Python's `str.isspace()` accepts.
    static func isWhitespace(_ value: UInt32) -> Bool {
        switch value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Whether `text` holds whitespace or a control character, which a generated field must not.
    static func hasSpaceOrControl(_ text: String) -> Bool {
        text.unicodeScalars.contains { isWhitespace($0.value) || $0.value < 0x20 || $0.value == 0x7F }
    }

    /// The byte length of the whitespace character at `index`, or 0.
    @inline(__always)
    static func whitespaceWidth(_ bytes: UnsafeBufferPointer<UInt8>, _ index: Int) -> Int {
        let byte = bytes[index]
        if byte < 0x80 { return (byte >= 0x09 && byte <= 0x0D) || (byte >= 0x1C && byte <= 0x20) ? 1 : 0 }
        var value: UInt32
        let width: Int
        switch byte {
        case 0xC2...0xDF: (value, width) = (UInt32(byte & 0x1F), 2)
        case 0xE0...0xEF: (value, width) = (UInt32(byte & 0x0F), 3)
        default: return 0
        }
        guard index + width <= bytes.count else { return 0 }
        for offset in 1..<width { value = value << 6 | UInt32(bytes[index + offset] & 0x3F) }
        return isWhitespace(value) ? width : 0
    }

    /// The fields of `bytes[range]`; columns count from `range.lowerBound` + 1.
    static func fields(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, columnBase: Int) -> [Field] {
        var result: [Field] = []
        var index = range.lowerBound
        while index < range.upperBound {
            let width = whitespaceWidth(bytes, index)
            if width > 0 {
                index += width
                continue
            }
            let start = index
            while index < range.upperBound && whitespaceWidth(bytes, index) == 0 { index += 1 }
            result.append(Field(text: String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self),
                                column: columnBase + start - range.lowerBound + 1))
        }
        return result
    }

    /// Calls `body` with the 1-based number and byte range of each line of `bytes`.
    static func forEach(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Int, Range<Int>) -> Void) {
        var number = 1
        var start = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D {
                body(number, start..<index)
                number += 1
                index += byte == 0x0D && index + 1 < bytes.count && bytes[index + 1] == 0x0A ? 2 : 1
                start = index
            } else {
                index += 1
            }
        }
        if start < bytes.count { body(number, start..<bytes.count) }
    }
}

/// One line of a policy file that does something.
struct Statement: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        case rule(Rule)
        /// `!include PATH` (in an old-syntax file: `$include:PATH`).
        case include(Lines.Field)
        /// `!include-dir DIR`.
        case includeDir(Lines.Field)
        /// `!include-service SERVICE ARGUMENT PATH`.
        case includeService(service: String, argument: String, path: Lines.Field)
        /// `!compat-4.0`.
        case compat
    }

    var line: Int
    var kind: Kind
}

/// Which syntax a file is read in.
enum Syntax: Sendable, Hashable {
    /// The 4.1+ format: `SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE …]`.
    case current
    /// The R4.0 format `SOURCE TARGET ACTION[,PARAM=VALUE…]`, applied to one service and argument
    /// (docs/qrexec-policy.md, "Compat 4.0").
    case legacy(service: String, argument: String)
}

/// Reads the text of one policy file into statements (no file access).
enum Parser {
    /// The statements of `bytes` and every error found; parsing goes on after an error.
    static func parse(_ bytes: [UInt8], file: String, syntax: Syntax, limits: PolicyLimits) -> (statements: [Statement], errors: [PolicyError]) {
        var statements: [Statement] = []
        var errors: [PolicyError] = []
        guard String(validating: bytes, as: UTF8.self) != nil else {
            return ([], [PolicyError(.unreadable, "not valid UTF-8 text", file: file, expected: "UTF-8 text")])
        }
        bytes.withUnsafeBufferPointer { buffer in
            Lines.forEach(buffer) { number, range in
                guard range.count <= limits.maxLineLength else {
                    errors.append(PolicyError(.limit, "line is \(range.count) bytes long", file: file, line: number,
                                              expected: "at most \(limits.maxLineLength) bytes"))
                    return
                }
                var fields: [Lines.Field]
                switch syntax {
                case .current:
                    fields = Lines.fields(buffer, range, columnBase: 0)
                case .legacy:
                    var line = Array(buffer[range])
                    Self.rewriteLegacy(&line)
                    fields = line.withUnsafeBufferPointer { Lines.fields($0, 0..<$0.count, columnBase: 0) }
                }
                guard let first = fields.first, first.text.utf8.first != UInt8(ascii: "#") else { return }
                let result = first.text.utf8.first == UInt8(ascii: "!")
                    ? directive(fields, line: number, syntax: syntax)
                    : rule(fields, line: number, file: file, syntax: syntax)
                switch result {
                case .success(let statement): statements.append(statement)
                case .failure(let error):
                    errors.append(PolicyError(.syntax, error.message, file: file, line: number, column: error.column,
                                              expected: error.expected))
                }
            }
        }
        return (statements, errors)
    }

    /// A syntax error before it gets its file and line.
    struct LineError: Error {
        var message: String
        var column: Int?
        var expected: String?
    }

    /// `$include:` → `!include `, `$` → `@`, `,` → ` ` (all the same length, so columns still hold).
    static func rewriteLegacy(_ line: inout [UInt8]) {
        let include = Array("$include:".utf8)
        var index = 0
        while index < line.count {
            if line[index] == UInt8(ascii: "$") && line[index...].starts(with: include) {
                line.replaceSubrange(index..<index + include.count, with: "!include ".utf8)
                index += include.count
                continue
            }
            if line[index] == UInt8(ascii: "$") { line[index] = UInt8(ascii: "@") }
            if line[index] == UInt8(ascii: ",") { line[index] = UInt8(ascii: " ") }
            index += 1
        }
    }

    static func directive(_ fields: [Lines.Field], line: Int, syntax: Syntax) -> Result<Statement, LineError> {
        let name = fields[0].text
        let known: [(name: String, parameters: Int, legacy: Bool)] = [
            ("!include", 1, true), ("!include-dir", 1, false), ("!include-service", 3, false), ("!compat-4.0", 0, false),
        ]
        guard let directive = known.first(where: { name.isBytes($0.name) && ($0.legacy || syntax == .current) }) else {
            let valid = syntax == .current ? "!include, !include-dir, !include-service or !compat-4.0" : "$include:PATH"
            return .failure(LineError(message: "invalid directive", column: fields[0].column, expected: valid))
        }
        guard fields.count - 1 == directive.parameters else {
            return .failure(LineError(message: "invalid number of params", column: fields[0].column,
                                      expected: "\(directive.parameters) parameter\(directive.parameters == 1 ? "" : "s") after \(name)"))
        }
        let kind: Statement.Kind
        switch directive.name {
        case "!include": kind = .include(fields[1])
        case "!include-dir": kind = .includeDir(fields[1])
        case "!include-service": kind = .includeService(service: fields[1].text, argument: fields[2].text, path: fields[3])
        default: kind = .compat
        }
        return .success(Statement(line: line, kind: kind))
    }

    static func rule(_ fields: [Lines.Field], line: Int, file: String, syntax: Syntax) -> Result<Statement, LineError> {
        var texts = fields.map(\.text)
        var columns: [Int?] = fields.map(\.column)
        switch syntax {
        case .current:
            guard fields.count >= 5 else {
                return .failure(LineError(message: "wrong number of fields", column: 1,
                                          expected: "SERVICE ARGUMENT SOURCE TARGET ACTION [PARAM=VALUE ...]"))
            }
        case .legacy(let service, let argument):
            guard fields.count >= 3 else {
                return .failure(LineError(message: "wrong number of fields", column: 1,
                                          expected: "SOURCE TARGET ACTION[,PARAM=VALUE...]"))
            }
            texts.insert(contentsOf: [service, argument], at: 0)
            columns.insert(contentsOf: [nil, nil], at: 0)
        }
        return RuleCheck.rule(texts, origin: RuleOrigin(file: file, line: line))
            .map { Statement(line: line, kind: .rule($0)) }
            .mapError { LineError(message: $0.message, column: columns[min($0.field, columns.count - 1)], expected: $0.expected) }
    }
}
