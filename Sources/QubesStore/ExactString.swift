import LQCommon

/// A string that is compared, hashed and ordered by its Unicode code points,
/// as Python (and so qubesd) does.
///
/// Swift's `String` equality uses canonical equivalence, so `"é"` (U+00E9)
/// and `"e\u{301}"` are equal and hash alike; qubesd keeps them apart. Use
/// this type for qube names, feature names and tags wherever they are keys
/// or sorted.
public struct ExactString: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let value: String

    public init(_ value: String) { self.value = value }
    public init(stringLiteral value: String) { self.value = value }

    public var description: String { value }

    public static func == (lhs: ExactString, rhs: ExactString) -> Bool {
        compare(lhs.value, rhs.value) == 0
    }

    public func hash(into hasher: inout Hasher) {
        var copy = value
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Code point order; the same as the byte order of the UTF-8 encodings.
    public static func < (lhs: ExactString, rhs: ExactString) -> Bool {
        compare(lhs.value, rhs.value) < 0
    }

    /// Three-way comparison by code point.
    static func compare(_ lhs: String, _ rhs: String) -> Int { codePointCompare(lhs, rhs) }
}

extension String {
    /// Code point order, as Python compares strings.
    func precedesByCodePoint(_ other: String) -> Bool {
        ExactString.compare(self, other) < 0
    }
}
