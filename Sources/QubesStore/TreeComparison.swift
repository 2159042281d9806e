import Glibc

/// Compares two qubes.xml trees in document order without building any
/// index: the fast answer to "does qubesd's save state what the file states?"
/// (docs/qubes-xml.md, "Checking").
enum TreeComparison {
    /// Whether `input` is qubesd's canonical text of `saved` up to what
    /// states nothing: line for line the same bytes, except empty
    /// `<devices class=…/>` lines and the order of the tag lines within each
    /// `<tags>` block. Needs no parse of `saved`; equal lines cost a `memcmp`.
    static func sameLines(_ input: [UInt8], _ saved: [UInt8]) -> Bool {
        input.withUnsafeBufferPointer { input in
            saved.withUnsafeBufferPointer { saved in
                var inputLines = Lines(input)
                var savedLines = Lines(saved)
                var line = inputLines.next()
                var other = savedLines.next()
                while let current = line, let counterpart = other {
                    if same(current, counterpart) {
                        if isTagsStart(current) && !sameTags(&inputLines, &savedLines) { return false }
                        line = inputLines.next()
                        other = savedLines.next()
                    } else if isEmptyDevices(current) {
                        line = inputLines.next()
                    } else if isEmptyDevices(counterpart) {
                        other = savedLines.next()
                    } else {
                        return false
                    }
                }
                while let current = line {
                    guard isEmptyDevices(current) else { return false }
                    line = inputLines.next()
                }
                while let counterpart = other {
                    guard isEmptyDevices(counterpart) else { return false }
                    other = savedLines.next()
                }
                return true
            }
        }
    }

    private typealias Line = UnsafeBufferPointer<UInt8>

    /// The `\n`-separated lines of a text, without copying.
    private struct Lines {
        let bytes: UnsafeBufferPointer<UInt8>
        var start = 0
        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }
        mutating func next() -> Line? {
            guard start < bytes.count, let base = bytes.baseAddress else { return nil }
            let rest = bytes.count - start
            var end = bytes.count
            if let newline = memchr(base + start, 0x0A, rest) { end = UnsafePointer(newline.assumingMemoryBound(to: UInt8.self)) - base }
            defer { start = end + 1 }
            return Line(rebasing: bytes[start..<end])
        }
    }

    private static func same(_ line: Line, _ other: Line) -> Bool {
        line.count == other.count && (line.isEmpty || memcmp(line.baseAddress!, other.baseAddress!, line.count) == 0)
    }

    /// The tag lines up to `</tags>` of both texts: the same set, each a bare `<tag name=…/>`.
    private static func sameTags(_ inputLines: inout Lines, _ savedLines: inout Lines) -> Bool {
        // Mostly the tags come in the same order: compared in step, without collecting them.
        var inputAhead = inputLines
        var savedAhead = savedLines
        while let tag = inputAhead.next(), let other = savedAhead.next(), same(tag, other) {
            if isTagsEnd(tag) {
                (inputLines, savedLines) = (inputAhead, savedAhead)
                return true
            }
            guard isTag(tag) else { return false }
        }
        var inputTags: [Line] = []
        var savedTags: [Line] = []
        while let tag = inputLines.next(), !isTagsEnd(tag) { inputTags.append(tag) }
        while let tag = savedLines.next(), !isTagsEnd(tag) { savedTags.append(tag) }
        guard inputTags.count == savedTags.count, inputTags.allSatisfy(isTag) else { return false }
        if inputTags.elementsEqual(savedTags, by: same) { return true }
        let order: (Line, Line) -> Bool = { $0.lexicographicallyPrecedes($1) }
        return inputTags.sorted(by: order).elementsEqual(savedTags.sorted(by: order), by: same)
    }

    private static func trimmed(_ line: Line) -> Slice<Line> { line.drop { $0 == UInt8(ascii: " ") } }
    private static func isTagsStart(_ line: Line) -> Bool { isIndented(line, "<tags>") }
    private static func isTagsEnd(_ line: Line) -> Bool { isIndented(line, "</tags>") }

    /// Whether the line is `text` after nothing but spaces.
    private static func isIndented(_ line: Line, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard line.count >= count, memcmp(line.baseAddress! + (line.count - count), text.utf8Start, count) == 0 else { return false }
        return line.prefix(line.count - count).allSatisfy { $0 == UInt8(ascii: " ") }
    }

    /// `<tag name="…"/>` with nothing else in the line but indentation.
    private static func isTag(_ line: Line) -> Bool { isEmptyElement(line, "<tag name=\"") }

    /// `<devices class="…"/>`: a device class without assignments.
    private static func isEmptyDevices(_ line: Line) -> Bool { isEmptyElement(line, "<devices class=\"") }

    /// `opening…"/>` on a line of its own, the value without `"` or `<`.
    private static func isEmptyElement(_ line: Line, _ opening: String) -> Bool {
        let text = trimmed(line)
        return text.starts(with: opening.utf8) && text.reversed().starts(with: ">/\"".utf8)
            && text.dropFirst(opening.utf8.count).dropLast(3).allSatisfy { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "<") }
    }

    /// Whether `input` and `saved` hold the same elements in the same order,
    /// with the same attributes in the same order and the same text in every
    /// element without children. Text around child elements (indentation) and
    /// empty `<devices>` are not data; the tags of a `<tags>` element may come in any order, since
    /// qubesd writes them in set order.
    static func sameData(_ input: XMLNode, _ saved: XMLNode) -> Bool {
        guard input.name == saved.name,
            input.attributes.elementsEqual(saved.attributes, by: { $0.name == $1.name && $0.value.utf8.elementsEqual($1.value.utf8) })
        else { return false }
        let inputChildren = input.children
        let savedChildren = saved.children
        if inputChildren.isEmpty || savedChildren.isEmpty {
            return inputChildren.isEmpty && savedChildren.isEmpty && (input.text ?? "").utf8.elementsEqual((saved.text ?? "").utf8)
        }
        if input.name == "tags" { return sameTags(inputChildren, savedChildren) }
        var savedIndex = savedChildren.startIndex
        func skipStatingNothing() {
            while savedIndex != savedChildren.endIndex, statesNothing(savedChildren[savedIndex]) {
                savedIndex = savedChildren.index(after: savedIndex)
            }
        }
        for child in inputChildren where !statesNothing(child) {
            skipStatingNothing()
            guard savedIndex != savedChildren.endIndex, sameData(child, savedChildren[savedIndex]) else { return false }
            savedIndex = savedChildren.index(after: savedIndex)
        }
        skipStatingNothing()
        return savedIndex == savedChildren.endIndex
    }

    /// An empty `<devices class=…/>`: no assignments, which qubesd does not write.
    private static func statesNothing(_ element: XMLNode) -> Bool {
        element.name == "devices" && element.children.isEmpty
    }

    /// Whether two `<tags>` hold the same `<tag name=…/>` elements in any order.
    private static func sameTags(_ input: XMLNode.Children, _ saved: XMLNode.Children) -> Bool {
        func names(_ children: XMLNode.Children) -> [String]? {
            var names: [String] = []
            for tag in children {
                guard tag.name == "tag", tag.children.isEmpty, tag.text == nil, tag.attributes.count == 1,
                    let name = tag.attribute("name")
                else { return nil }
                names.append(name)
            }
            return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
        guard let inputNames = names(input), let savedNames = names(saved) else { return false }
        return inputNames.elementsEqual(savedNames) { $0.utf8.elementsEqual($1.utf8) }
    }
}
