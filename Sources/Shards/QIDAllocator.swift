/// Picks unused qids at random from the shard range, so the numbers reveal
/// nothing about how many shards or qubes exist (docs/shards.md, "QIDs").
public struct QIDAllocator: Sendable {
    public let range: ClosedRange<Int>
    private var used: Set<Int>
    private let random: @Sendable (ClosedRange<Int>) -> Int

    /// Random draws before falling back to a scan from a random start.
    static let draws = 32

    /// - Parameters:
    ///   - used: qids already taken (those outside `range` are ignored).
    ///   - random: a uniform pick from a range; the default is the system CSPRNG.
    public init(
        range: ClosedRange<Int>, used: some Sequence<Int>,
        random: @escaping @Sendable (ClosedRange<Int>) -> Int = QIDAllocator.systemRandom
    ) {
        self.range = range
        self.used = Set(used.filter(range.contains))
        self.random = random
    }

    /// A uniform pick from the operating system's CSPRNG (`getrandom`).
    public static let systemRandom: @Sendable (ClosedRange<Int>) -> Int = { range in
        var generator = SystemRandomNumberGenerator()
        return Int.random(in: range, using: &generator)
    }

    /// A free qid of the range, now taken; `nil` when the range is full.
    /// - Complexity: O(1) expected while the range is less than half full, O(range) at worst.
    public mutating func next() -> Int? {
        guard used.count < range.count else { return nil }
        for _ in 0..<Self.draws {
            let qid = random(range)
            if range.contains(qid), used.insert(qid).inserted { return qid }
        }
        let start = ((random(range) - range.lowerBound) % range.count + range.count) % range.count
        for step in 0..<range.count {
            let qid = range.lowerBound + (start + step) % range.count
            if used.insert(qid).inserted { return qid }
        }
        return nil
    }
}
