import Foundation
import QubesStore
import Testing

/// Every fixture file is a test case: the outputs of `lq` must be the bytes
/// the reference qubesd produced.
@Suite struct ValidFixtureTests {
    static let names = Fixtures.inputs("valid")

    @Test(arguments: names)
    func dumpMatchesReference(_ name: String) throws {
        let folder = Fixtures.bundled.appendingPathComponent("valid")
        let loaded = try Fixtures.load(try Fixtures.bytes(folder.appendingPathComponent(name + ".xml")))
        let dump = StoreDump.json(loaded.store).canonicalBytes()
        #expect(String(decoding: dump, as: UTF8.self) == (try Fixtures.text(folder.appendingPathComponent(name + ".dump.json"))))
        let effectiveURL = folder.appendingPathComponent(name + ".effective.json")
        if Fixtures.exists(effectiveURL) {
            let effective = StoreDump.json(loaded.store, effective: true).canonicalBytes()
            #expect(String(decoding: effective, as: UTF8.self) == (try Fixtures.text(effectiveURL)))
        }
    }

    @Test(arguments: names)
    func resaveMatchesReference(_ name: String) throws {
        let folder = Fixtures.bundled.appendingPathComponent("valid")
        let loaded = try Fixtures.load(try Fixtures.bytes(folder.appendingPathComponent(name + ".xml")))
        let saved = String(decoding: try XMLWriter.write(loaded.store), as: UTF8.self)
        let expected = try Fixtures.text(folder.appendingPathComponent(name + ".resave.xml"))
        #expect(Fixtures.tagsSorted(saved) == Fixtures.tagsSorted(expected))
        // Idempotence: the saved form loads back to the same bytes.
        let again = try XMLWriter.write(try Fixtures.load(Array(saved.utf8)).store)
        #expect(String(decoding: again, as: UTF8.self) == saved)
        #expect(loaded.notes.isEmpty, "a clean qubesd-written store has nothing to report: \(loaded.notes)")
    }
}

@Suite struct InvalidFixtureTests {
    static let names = Fixtures.inputs("invalid")

    @Test(arguments: names)
    func outcomeMatchesReference(_ name: String) throws {
        let folder = Fixtures.bundled.appendingPathComponent("invalid")
        let input = try Fixtures.bytes(folder.appendingPathComponent(name + ".xml"))
        let expect = try Fixtures.text(folder.appendingPathComponent(name + ".expect"))
        let verdict = expect.split(separator: "\n")[0].split(separator: " ")
        if verdict[0] == "reject" {
            do {
                _ = try Fixtures.load(input)
                Issue.record("\(name): qubesd rejects it (\(verdict[1])) but it loaded")
            } catch let error as StoreError {
                #expect(error.kind.rawValue == String(verdict[1]), "\(name): \(error)")
            }
            return
        }
        let loaded = try Fixtures.load(input)
        let dump = String(decoding: StoreDump.json(loaded.store).canonicalBytes(), as: UTF8.self)
        #expect(dump == (try Fixtures.text(folder.appendingPathComponent(name + ".dump.json"))), "\(name) dump")
        let resave = folder.appendingPathComponent(name + ".resave.xml")
        if Fixtures.exists(resave) {
            let saved = String(decoding: try XMLWriter.write(loaded.store), as: UTF8.self)
            #expect(Fixtures.tagsSorted(saved) == Fixtures.tagsSorted(try Fixtures.text(resave)), "\(name) resave")
        } else {
            let errorLine = try Fixtures.text(folder.appendingPathComponent(name + ".resave.err"))
            let kind = errorLine.split(separator: ":")[0]
            #expect(throws: StoreError.self) { try XMLWriter.write(loaded.store) }
            do { _ = try XMLWriter.write(loaded.store) } catch let error as StoreError {
                #expect(error.kind.rawValue == String(kind))
            }
        }
        let log = folder.appendingPathComponent(name + ".log")
        if Fixtures.exists(log) {
            let expected = try Fixtures.text(log).split(separator: "\n").count
            #expect(loaded.notes.count == expected, "\(name): notes \(loaded.notes)")
        }
    }
}
