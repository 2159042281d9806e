import LQCommon

/// The choices of an ask prompt, in code-point order (docs/qrexec-policy.md,
/// "Ask choices"): positions in a table of names shared by every decision of
/// an evaluator, each name kept with its JSON text. A prompt offering a
/// thousand qubes is a thousand small integers, not a thousand strings, and
/// is written out by copying bytes.
public struct AskChoices: RandomAccessCollection, Sendable, Hashable, ExpressibleByArrayLiteral {
    let table: NameTable
    let ranks: [Int32]

    init(table: NameTable, ranks: [Int32]) {
        self.table = table
        self.ranks = ranks
    }

    /// The choices `names`, in the order given.
    public init(_ names: [String]) {
        self.init(table: NameTable(names), ranks: Array(0..<Int32(names.count)))
    }

    public init(arrayLiteral names: String...) { self.init(names) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { ranks.count }
    public subscript(position: Int) -> String { table.names[Int(ranks[position])] }

    /// The choices `isKept` keeps.
    func filter<Failure: Error>(_ isKept: (String) throws(Failure) -> Bool) throws(Failure) -> AskChoices {
        var kept: [Int32] = []
        for rank in ranks where try isKept(table.names[Int(rank)]) { kept.append(rank) }
        return AskChoices(table: table, ranks: kept)
    }

    /// Equal when the names are, byte for byte.
    public static func == (lhs: AskChoices, rhs: AskChoices) -> Bool {
        lhs.count == rhs.count && zip(lhs, rhs).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for name in self { hasher.combine(name) }
    }

    /// Appends the choices as JSON strings with `, ` between them (what
    /// `JSONValue.appendQuoted(_:separator:to:)` writes for the names).
    func appendJSON(to output: inout [UInt8]) {
        table.quoted.withUnsafeBufferPointer { quoted in
            table.starts.withUnsafeBufferPointer { starts in
                var size = 2 * Swift.max(ranks.count - 1, 0)
                for rank in ranks { size += Int(starts[Int(rank) + 1] - starts[Int(rank)]) }
                let end = output.count
                output.append(contentsOf: repeatElement(0, count: size))
                output.withUnsafeMutableBufferPointer { output in
                    // Copied name by name: appending each would cost more than the bytes.
                    var cursor = output.baseAddress! + end
                    for (offset, rank) in ranks.enumerated() {
                        if offset > 0 {
                            cursor[0] = UInt8(ascii: ",")
                            cursor[1] = 0x20
                            cursor += 2
                        }
                        let start = Int(starts[Int(rank)]), count = Int(starts[Int(rank) + 1]) - start
                        cursor.update(from: quoted.baseAddress! + start, count: count)
                        cursor += count
                    }
                }
            }
        }
    }
}

/// Names and their JSON strings (quoted and escaped), for `AskChoices`.
final class NameTable: Sendable {
    let names: [String]
    /// Every name's JSON string, one after the other.
    let quoted: [UInt8]
    /// Where each name's JSON string starts in `quoted`, and its end.
    let starts: [Int32]

    init(_ names: [String]) {
        var quoted: [UInt8] = []
        var starts: [Int32] = [0]
        starts.reserveCapacity(names.count + 1)
        for name in names {
            JSONValue.appendQuoted(name, to: &quoted)
            starts.append(Int32(quoted.count))
        }
        (self.names, self.quoted, self.starts) = (names, quoted, starts)
    }
}
