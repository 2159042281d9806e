import Foundation
import QubesStore
import Testing

@Suite struct StoreTests {
    static let mini = try! Fixtures.text(Fixtures.bundled.appendingPathComponent("valid/qubes-mini.xml"))

    /// qubes-mini with extra AppVMs named `names` (based on the `work` qube).
    static func withQubes(_ names: [String]) -> String {
        var domains = ""
        for (offset, name) in names.enumerated() {
            let qid = 100 + offset
            domains += """
                    <domain id="domain-\(qid)" class="AppVM">
                      <properties>
                        <property name="label">red</property>
                        <property name="name">\(name)</property>
                        <property name="qid">\(qid)</property>
                        <property name="uuid">00000000-0000-4000-8000-\(String(format: "%012d", qid))</property>
                        <property name="template">fedora-40-xfce</property>
                      </properties>
                    </domain>

                """
        }
        return mini.replacingOccurrences(of: "  </domains>", with: domains + "  </domains>")
    }

    @Test func namesAreComparedAndSortedByCodePoint() throws {
        let precomposed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        #expect(precomposed == decomposed, "Swift calls them equal; qubesd does not")
        let names = [precomposed, decomposed, "a0", "a.b", "a-b", "_x", "Z", "a"]
        let loaded = try Fixtures.load(Array(Self.withQubes(names).utf8))
        #expect(loaded.store[precomposed]?.qid == 100)
        #expect(loaded.store[decomposed]?.qid == 101)
        let order = loaded.store.domains.map(\.name).filter { names.contains($0) }
        let expected = ["Z", "_x", "a", "a-b", "a.b", "a0", decomposed, precomposed]
        #expect(order.map { Array($0.unicodeScalars) } == expected.map { Array($0.unicodeScalars) })
        let saved = String(decoding: try XMLWriter.write(loaded.store), as: UTF8.self)
        let positions = expected.map { name in saved.utf8.split(separator: UInt8(ascii: "\n")).firstIndex { line in
            String(decoding: line, as: UTF8.self).utf8.elementsEqual("        <property name=\"name\">\(name)</property>".utf8)
        } ?? -1 }
        #expect(positions == positions.sorted() && !positions.contains(-1))
    }

    @Test func loadingNeverWritesAndPreloadCleanupIsInMemory() throws {
        let url = Fixtures.bundled.appendingPathComponent("invalid/feature-preload-absent.xml")
        let before = try Fixtures.bytes(url)
        let loaded = try Fixtures.load(before)
        #expect(loaded.store["default-dvm"]?.features["preload-dispvm"] == "disp-browser")
        #expect(loaded.notes.map(\.level) == [.info])
        #expect(try Fixtures.bytes(url) == before)
    }

    @Test func effectiveValuesUseTheGivenHost() throws {
        let loaded = try Fixtures.load(Array(Self.mini.utf8))
        let work = try #require(loaded.store["work"])
        let offline = EffectiveProperties(store: loaded.store).value("maxmem", of: work)
        #expect(throws: StoreError.self) { try offline.get() }
        let host = HostFacts(memoryMiB: 16384, cpuCount: 8, hypervisorAvailable: true)
        let online = EffectiveProperties(store: loaded.store, host: host)
        #expect(try online.value("maxmem", of: work).get() == .integer("4000"))
        #expect(try online.global()["no_cpus"]?.get() == .integer("8"))
        #expect(try online.value("ip", of: work).get() == .string("10.137.0.14"))
    }

    @Test func storeEditsKeepIndexesConsistent() throws {
        var store = try Fixtures.load(Array(Self.mini.utf8)).store
        store.update("work") { $0.name = "work2" }
        #expect(store["work"] == nil)
        #expect(store["work2"]?.qid == 14)
        #expect(throws: StoreError.self) { try store.insert(Domain(vmClass: .appVM, qid: 14, name: "other", uuid: "")) }
        #expect(throws: StoreError.self) { try store.insert(Domain(vmClass: .appVM, qid: 99, name: "work2", uuid: "")) }
        #expect(store.remove("work2")?.qid == 14)
        #expect(store[qid: 14] == nil)
    }
}
