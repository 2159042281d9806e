// Benchmarks for lq (release build): `swift run -c release lq-bench [FIXTURE-DIR]`.
//
// For each scaled store: XML parse, full load (parse + model + qubesd's load
// checks), canonical dump, save to bytes, and atomic save with fsyncs —
// minimum and median over repeated runs.
import Glibc
import QubesStore

let folder = CommandLine.arguments.dropFirst().first ?? "../shared/fixtures/qubes-xml/valid"

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

func measure(_ runs: Int, _ body: () throws -> Void) rethrows -> (min: Double, median: Double) {
    let clock = ContinuousClock()
    var samples: [Double] = []
    for _ in 0..<runs {
        let elapsed = try clock.measure(body)
        samples.append(Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15)
    }
    samples.sort()
    return (samples[0], samples[samples.count / 2])
}

func format(_ value: Double) -> String {
    let rounded = (value * 100).rounded() / 100
    return String(rounded)
}

print("store            qubes  bytes      parse ms (min/med)  load ms (min/med)  dump ms (min/med)  save ms (min/med)  save+fsync ms (min/med)")
var tempTemplate = Array("/tmp/lq-bench-XXXXXX".utf8CString)
let tempDirectory = String(cString: mkdtemp(&tempTemplate)!)
defer { rmdir(tempDirectory) }
for name in ["qubes-scaled-100", "qubes-scaled-1000", "qubes-scaled-5000"] {
    guard let bytes = readFile("\(folder)/\(name).xml") else {
        print("\(name): not found in \(folder), skipped")
        continue
    }
    let runs = name.hasSuffix("5000") ? 15 : 30
    let store = try Store.load(xml: bytes).store
    let parse = try measure(runs) { _ = try XMLReader.parse(bytes) }
    let load = try measure(runs) { _ = try Store.load(xml: bytes) }
    let dump = measure(runs) { _ = StoreDump.json(store).canonicalBytes() }
    let save = try measure(runs) { _ = try XMLWriter.write(store) }
    let target = StoreFile(path: "\(tempDirectory)/\(name).xml")
    let durable = try measure(runs) { try target.replace(with: try XMLWriter.write(store), expecting: nil) }
    unlink("\(tempDirectory)/\(name).xml")
    let columns = [
        name.padding(16), String(store.count).padding(6), String(bytes.count).padding(10),
        "\(format(parse.min)) / \(format(parse.median))".padding(19), "\(format(load.min)) / \(format(load.median))".padding(18),
        "\(format(dump.min)) / \(format(dump.median))".padding(18), "\(format(save.min)) / \(format(save.median))".padding(18),
        "\(format(durable.min)) / \(format(durable.median))",
    ]
    print(columns.joined(separator: " "))
}

try PolicyBenchmark.run(in: tempDirectory)

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
