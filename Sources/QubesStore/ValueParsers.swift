/// Parsers that read values the way qubesd's Python setters do.
public enum ValueParsers {
    /// Python `int(text)`: surrounding white space, an optional sign, `_`
    /// between digits and any Unicode decimal digits; no size limit.
    /// - Returns: the canonical decimal text (`str(int(text))`), or `nil`.
    public static func pythonInt(_ text: String) -> String? {
        if let plain = plainDecimal(text) { return plain }
        let scalars = Array(text.unicodeScalars)
        var start = 0
        var end = scalars.count
        while start < end && scalars[start].properties.isWhitespace { start += 1 }
        while end > start && scalars[end - 1].properties.isWhitespace { end -= 1 }
        guard start < end else { return nil }
        var negative = false
        if scalars[start] == "+" || scalars[start] == "-" {
            negative = scalars[start] == "-"
            start += 1
        }
        var digits: [UInt8] = []
        var previousWasDigit = false
        for index in start..<end {
            let scalar = scalars[index]
            if scalar == "_" {
                guard previousWasDigit, index + 1 < end else { return nil }
                previousWasDigit = false
                continue
            }
            guard scalar.properties.numericType == .decimal, let value = scalar.properties.numericValue else {
                return nil
            }
            digits.append(UInt8(ascii: "0") + UInt8(value))
            previousWasDigit = true
        }
        guard previousWasDigit else { return nil }
        let significant = digits.drop { $0 == UInt8(ascii: "0") }
        if significant.isEmpty { return "0" }
        return (negative ? "-" : "") + String(decoding: significant, as: UTF8.self)
    }

    /// Fast path: ASCII digits with no sign, blank, `_` or leading zero.
    private static func plainDecimal(_ text: String) -> String? {
        let utf8 = text.utf8
        guard let first = utf8.first, first != UInt8(ascii: "0") || utf8.count == 1,
            utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return text
    }

    /// qubesd's boolean literal: `0 no false off` / `1 yes true on`, any case.
    public static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "0", "no", "false", "off": return false
        case "1", "yes", "true", "on": return true
        default: return nil
        }
    }

    /// Python `uuid.UUID(text)`, written lower-case canonical.
    public static func uuid(_ text: String) -> String? {
        if isCanonicalUUID(text) { return text }
        var value = text.splitting(onSubstring: "urn:").joined().splitting(onSubstring: "uuid:").joined()
        while value.hasPrefix("{") { value.removeFirst() }
        while value.hasSuffix("}") { value.removeLast() }
        value.removeAll { $0 == "-" }
        guard value.utf8.count == 32, value.utf8.allSatisfy(isHexDigit) else { return nil }
        let hex = Array(value.lowercased().utf8)
        var output = ""
        for (index, byte) in hex.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { output.append("-") }
            output.append(Character(Unicode.Scalar(byte)))
        }
        return output
    }

    /// Already lower-case `8-4-4-4-12`.
    private static func isCanonicalUUID(_ text: String) -> Bool {
        guard text.utf8.count == 36 else { return false }
        var copy = text
        return copy.withUTF8 { bytes in
            for index in bytes.indices {
                let byte = bytes[index]
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard byte == UInt8(ascii: "-") else { return false }
                } else if !((0x30...0x39).contains(byte) || (0x61...0x66).contains(byte)) {
                    return false
                }
            }
            return true
        }
    }

    static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte) || (0x41...0x46).contains(byte)
    }

    /// Python `ipaddress.IPv4Address(text)`.
    /// - Returns: the canonical dotted quad, or the AddressValueError message.
    public static func ipv4(_ text: String) -> Result<String, StoreError> {
        func failure(_ message: String) -> Result<String, StoreError> {
            .failure(StoreError(.addressValueError, message, value: text))
        }
        guard !text.isEmpty else { return failure("Address cannot be empty") }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return failure("Expected 4 octets in '\(text)'") }
        var values: [Int] = []
        for octet in octets {
            guard !octet.isEmpty else { return failure("Empty octet not permitted in '\(text)'") }
            guard octet.utf8.allSatisfy({ (0x30...0x39).contains($0) }), octet.utf8.count <= 3, let value = Int(octet)
            else { return failure("Only decimal digits permitted in '\(octet)' in '\(text)'") }
            guard value <= 255 else { return failure("Octet \(value) (> 255) not permitted in '\(text)'") }
            guard octet.utf8.count == 1 || octet.first != "0" else {
                return failure("Leading zeros are not permitted in '\(octet)' in '\(text)'")
            }
            values.append(value)
        }
        return .success(values.map(String.init).joined(separator: "."))
    }

    /// Python `ipaddress.IPv6Address(text)`, written compressed and lower-case.
    public static func ipv6(_ text: String) -> Result<String, StoreError> {
        guard let groups = ipv6Groups(text) else {
            return .failure(StoreError(.addressValueError, "invalid IPv6 address '\(text)'", value: text))
        }
        return .success(compressIPv6(groups))
    }

    private static func ipv6Groups(_ text: String) -> [UInt16]? {
        guard !text.isEmpty, !text.contains("%") else { return nil }
        var body = text
        var tail: [UInt16] = []
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard case .success(let quad) = ipv4(String(text[text.index(after: lastColon)...])) else { return nil }
            let octets = quad.split(separator: ".").compactMap { UInt16($0) }
            tail = [octets[0] << 8 | octets[1], octets[2] << 8 | octets[3]]
            body = String(text[...lastColon])
            if !body.hasSuffix("::") { body.removeLast() }
        }
        func hextets(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var values: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.utf8.count), group.utf8.allSatisfy(isHexDigit),
                    let value = UInt16(group, radix: 16)
                else { return nil }
                values.append(value)
            }
            return values
        }
        let halves = body.splitting(onSubstring: "::")
        switch halves.count {
        case 1:
            guard let groups = hextets(body), groups.count + tail.count == 8 else { return nil }
            return groups + tail
        case 2:
            guard let left = hextets(halves[0]), let right = hextets(halves[1]) else { return nil }
            let missing = 8 - left.count - right.count - tail.count
            guard missing >= 1 else { return nil }
            return left + Array(repeating: 0, count: missing) + right + tail
        default:
            return nil
        }
    }

    private static func compressIPv6(_ groups: [UInt16]) -> String {
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < groups.count {
            if groups[index] == 0 {
                var end = index
                while end < groups.count && groups[end] == 0 { end += 1 }
                if end - index > bestLength {
                    bestStart = index
                    bestLength = end - index
                }
                index = end
            } else {
                index += 1
            }
        }
        let texts = groups.map { String($0, radix: 16) }
        guard bestLength > 1 else { return texts.joined(separator: ":") }
        let left = texts[..<bestStart].joined(separator: ":")
        let right = texts[(bestStart + bestLength)...].joined(separator: ":")
        return left + "::" + right
    }

    /// qubesd's MAC check: six `:`-separated two-digit hex groups, lower-cased.
    public static func mac(_ text: String) -> String? {
        let lowered = text.lowercased()
        let groups = lowered.split(separator: ":", omittingEmptySubsequences: false)
        guard groups.count == 6,
            groups.allSatisfy({ $0.utf8.count == 2 && $0.utf8.allSatisfy(isHexDigit) })
        else { return nil }
        return lowered
    }

    /// qubesd's `devices_denied` normalisation: 7-character codes,
    /// deduplicated and sorted.
    public static func devicesDenied(_ text: String) -> Result<String, StoreError> {
        let bytes = Array(text.utf8)
        guard bytes.count % 7 == 0 else {
            return .failure(
                StoreError(.qubesValueError, "Interface code list should be a multiple of 7 characters", value: text))
        }
        var codes = Set<[UInt8]>()
        for start in stride(from: 0, to: bytes.count, by: 7) { codes.insert(Array(bytes[start..<(start + 7)])) }
        let sorted = codes.sorted { $0.lexicographicallyPrecedes($1) }
        for code in sorted {
            let validClass = [UInt8]("bump*".utf8).contains(code[0])
            let validRest = code.dropFirst().allSatisfy {
                (0x30...0x39).contains($0) || (0x61...0x66).contains($0) || $0 == UInt8(ascii: "*")
            }
            guard validClass && validRest else {
                return .failure(
                    StoreError(
                        .qubesPropertyValueError,
                        "Interface code list should be in the form ([bump*][0-9a-f*]{6})*", value: text))
            }
        }
        return .success(String(decoding: sorted.joined(), as: UTF8.self))
    }

    /// qubesd's keyboard layout check: `layout+variant+options`.
    public static func keyboardLayoutError(_ text: String) -> String? {
        guard text.unicodeScalars.allSatisfy(\.isASCII) else { return "keyboard layout must be ASCII" }
        let parts = text.split(separator: "+", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return "invalid number of keyboard layout parameters" }
        func all(_ part: Substring, _ allowed: (UInt8) -> Bool) -> Bool { part.utf8.allSatisfy(allowed) }
        let letter: (UInt8) -> Bool = { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
        let word: (UInt8) -> Bool = { letter($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D }
        guard !parts[0].isEmpty, all(parts[0], letter) else { return "Invalid keyboard layout provided" }
        guard all(parts[1], word) else { return "Invalid keyboard variant provided" }
        guard all(parts[2], { word($0) || $0 == 0x3A || $0 == 0x2C }) else {
            return "Invalid keyboard options provided"
        }
        return nil
    }

    /// Whether `text` is a valid `default_user` (`A-Z a-z 0-9 _ - + , .`).
    public static func isValidUserName(_ text: String) -> Bool {
        text.utf8.allSatisfy {
            (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0)
                || [UInt8]("_-+,.".utf8).contains($0)
        }
    }

    /// Whether a tag name is allowed on load: ASCII letters, digits, `_`, `-` (empty allowed).
    public static func isValidTag(_ text: String) -> Bool {
        text.utf8.allSatisfy {
            (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F
                || $0 == 0x2D
        }
    }

    /// Python `os.path.normpath` for absolute or relative POSIX paths.
    public static func normalizedPath(_ path: String) -> String {
        guard !path.isEmpty else { return "." }
        let leadingSlashes = path.prefix { $0 == "/" }.count
        let initial = leadingSlashes == 2 ? "//" : leadingSlashes > 0 ? "/" : ""
        var components: [Substring] = []
        for component in path.split(separator: "/") where component != "." {
            if component == ".." && (components.last.map { $0 != ".." } ?? !initial.isEmpty) {
                if !components.isEmpty { components.removeLast() }
            } else if component == ".." && !initial.isEmpty {
                continue
            } else {
                components.append(component)
            }
        }
        let joined = initial + components.joined(separator: "/")
        return joined.isEmpty ? "." : joined
    }
}

extension String {
    /// The parts between occurrences of `separator` (like Python's `str.split(sep)`).
    func splitting(onSubstring separator: String) -> [String] {
        let bytes = Array(utf8)
        let needle = Array(separator.utf8)
        var parts: [String] = []
        var start = 0
        var index = 0
        while index + needle.count <= bytes.count {
            if bytes[index..<(index + needle.count)].elementsEqual(needle) {
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
                index += needle.count
                start = index
            } else {
                index += 1
            }
        }
        parts.append(String(decoding: bytes[start...], as: UTF8.self))
        return parts
    }
}
