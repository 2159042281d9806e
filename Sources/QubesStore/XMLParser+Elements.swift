/// Elements, attributes and text, read into the flat element table.
extension Parser {
    /// Parses the start tag at the current position.
    /// Parses the start tag at the current position into a new record whose
    /// `end` is set when the element closes; returns the record's index.
    mutating func parseStartTag() throws -> (index: Int, selfClosing: Bool) {
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

    mutating func parseAttributeValue(_ name: String) throws -> String {
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

    func valueTooLong(_ name: String, at offset: Int) -> StoreError {
        error("value of \(name) is longer than the limit of \(limits.maxValueLength) bytes", at: offset)
    }

    /// Appends character data (with line ends normalised) to `scratch`.
    mutating func collectText(_ range: Range<Int>) {
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
    mutating func finishText(of stack: inout [Frame]) {
        let last = stack.count - 1
        guard !stack[last].textDone else { return }
        stack[last].textDone = true
        if !scratch.isEmpty { records[stack[last].index].text = String(decoding: scratch, as: UTF8.self) }
    }

    /// The table of the elements read, with the root at index 0.
    mutating func finishTable() -> XMLNode {
        XMLNode(table: XMLElementTable(records: records, attributes: attributes), index: 0)
    }

    mutating func parseElementTree() throws -> XMLNode {
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

    func checkTextLength() throws {
        if scratch.count > limits.maxValueLength {
            throw error("Resource limit exceeded: text node longer than \(limits.maxValueLength) bytes")
        }
    }
}
