/// The document type declaration, and character and entity references.
extension Parser {
    mutating func parseDoctype() throws {
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

    mutating func skipExternalID() throws {
        let isPublic = lookingAt("PUBLIC")
        position += 6
        guard skipSpace() else { throw error("Space required after SYSTEM or PUBLIC") }
        _ = try parseQuoted()
        if isPublic {
            skipSpace()
            _ = try parseQuoted()
        }
    }

    mutating func parseQuoted() throws -> Range<Int> {
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

    mutating func parseInternalSubset() throws {
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

    mutating func skipMarkupDeclaration() throws {
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

    mutating func parseEntityDeclaration() throws {
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
    mutating func appendCharacterReference(into output: inout [UInt8]) throws {
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
    static func appendCharacterReference(
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
    mutating func appendReference(into output: inout [UInt8], inAttribute: Bool) throws {
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

    mutating func appendEntity(
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
}
