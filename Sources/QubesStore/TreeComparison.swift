/// Compares two qubes.xml trees in document order without building any
/// index: the fast answer to "does qubesd's save state what the file states?"
/// (docs/qubes-xml.md, "Checking").
enum TreeComparison {
    /// Whether `input` is qubesd's canonical text of `saved` up to what
    /// states nothing: line for line the same bytes, except empty
    /// `<devices class=…/>` lines of the input and the order of the tag lines
    /// within each `<tags>` block. Needs no parse of `saved`.
    static func sameLines(_ input: [UInt8], _ saved: [UInt8]) -> Bool {
        var inputLines = Lines(input)
        var savedLines = Lines(saved)
        func nextSaved() -> ArraySlice<UInt8>? {
            while let line = savedLines.next() {
                if !isEmptyDevices(line) { return line }
            }
            return nil
        }
        while let line = inputLines.next() {
            if isEmptyDevices(line) { continue }
            guard let other = nextSaved(), line.elementsEqual(other) else { return false }
            guard isTagsStart(line) else { continue }
            var inputTags: [ArraySlice<UInt8>] = []
            var savedTags: [ArraySlice<UInt8>] = []
            while let tag = inputLines.next(), !isTagsEnd(tag) { inputTags.append(tag) }
            while let tag = savedLines.next(), !isTagsEnd(tag) { savedTags.append(tag) }
            guard inputTags.count == savedTags.count else { return false }
            let order: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Bool = { $0.lexicographicallyPrecedes($1) }
            guard inputTags.sorted(by: order).elementsEqual(savedTags.sorted(by: order), by: { $0.elementsEqual($1) }),
                inputTags.allSatisfy(isTag)
            else { return false }
        }
        return nextSaved() == nil
    }

    /// The `\n`-separated lines of a text, without copying.
    private struct Lines {
        let bytes: [UInt8]
        var start = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        mutating func next() -> ArraySlice<UInt8>? {
            guard start < bytes.count else { return nil }
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            defer { start = end + 1 }
            return bytes[start..<end]
        }
    }

    private static func trimmed(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> { line.drop { $0 == UInt8(ascii: " ") } }
    private static func isTagsStart(_ line: ArraySlice<UInt8>) -> Bool { trimmed(line).elementsEqual("<tags>".utf8) }
    private static func isTagsEnd(_ line: ArraySlice<UInt8>) -> Bool { trimmed(line).elementsEqual("</tags>".utf8) }

    /// `<tag name="…"/>` with nothing else in the line but indentation.
    private static func isTag(_ line: ArraySlice<UInt8>) -> Bool { isEmptyElement(line, "<tag name=\"") }

    /// `<devices class="…"/>`: a device class without assignments.
    private static func isEmptyDevices(_ line: ArraySlice<UInt8>) -> Bool { isEmptyElement(line, "<devices class=\"") }

    /// `opening…"/>` on a line of its own, the value without `"` or `<`.
    private static func isEmptyElement(_ line: ArraySlice<UInt8>, _ opening: String) -> Bool {
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
