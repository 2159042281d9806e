import Glibc

/// Reads a whole file, or `nil` when it cannot be opened.
func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return bytes
}

/// Runs `body` `runs` times; minimum and median in milliseconds. What
/// `body` returns is released after the clock stops: a real run goes on
/// using it, so its teardown is not part of the cost measured.
func measure<Result>(_ runs: Int, _ body: () throws -> Result) rethrows -> (min: Double, median: Double) {
    let clock = ContinuousClock()
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = clock.now
        let result = try body()
        let elapsed = clock.now - start
        withExtendedLifetime(result) {}
        samples.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
    }
    samples.sort()
    return (samples[0], samples[samples.count / 2])
}

func format(_ value: Double) -> String {
    let rounded = (value * 100).rounded() / 100
    return String(rounded)
}

/// A new temporary folder.
func temporaryDirectory() -> String {
    var template = Array("/tmp/lq-bench-XXXXXX".utf8CString)
    return String(cString: mkdtemp(&template)!)
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
