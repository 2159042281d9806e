import Glibc
import QubesStore

/// qubes.xml: parse, load (parse + model + qubesd's load checks), dump,
/// save to bytes, and atomic save with fsyncs, per scaled store.
func storeBenchmarks(_ folder: String) throws {
    print("store            qubes  bytes      parse ms (min/med)  load ms (min/med)  dump ms (min/med)  save ms (min/med)  save+fsync ms (min/med)")
    let tempDirectory = temporaryDirectory()
    defer { rmdir(tempDirectory) }
    for name in ["qubes-scaled-100", "qubes-scaled-1000", "qubes-scaled-5000"] {
        guard let bytes = readFile("\(folder)/\(name).xml") else {
            print("\(name): not found in \(folder), skipped")
            continue
        }
        let runs = name.hasSuffix("5000") ? 15 : 30
        let store = try Store.load(xml: bytes).store
        let parse = try measure(runs) { try XMLReader.parse(bytes) }
        let load = try measure(runs) { try Store.load(xml: bytes) }
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
}
