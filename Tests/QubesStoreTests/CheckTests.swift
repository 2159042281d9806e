import Foundation
import QubesStore
import Testing

@Suite struct CheckTests {
    @Test(arguments: Fixtures.inputs("valid"))
    func cleanStoresHaveNoFindings(_ name: String) throws {
        let bytes = try Fixtures.bytes(Fixtures.bundled.appendingPathComponent("valid/\(name).xml"))
        let report = StoreCheck.check(bytes)
        #expect(report.errors.isEmpty)
        #expect(report.warnings.isEmpty, "\(report.warnings)")
    }

    @Test(arguments: Fixtures.inputs("invalid"))
    func invalidCasesAreReported(_ name: String) throws {
        let folder = Fixtures.bundled.appendingPathComponent("invalid")
        let bytes = try Fixtures.bytes(folder.appendingPathComponent(name + ".xml"))
        let verdict = try Fixtures.text(folder.appendingPathComponent(name + ".expect")).split(separator: " ")
        let report = StoreCheck.check(bytes)
        if verdict[0] == "reject" {
            #expect(report.errors.count == 1)
            #expect(report.errors.first?.message.contains(String(verdict[1].prefix { $0 != "\n" })) == true)
        } else {
            #expect(report.errors.isEmpty, "\(report.errors)")
            #expect(!report.warnings.isEmpty, "\(name): qubesd drops, changes or accepts something dubious here")
        }
    }

    /// Formatting and tag order are not changes; a changed value under the same layout still is.
    @Test func sameDataInAnotherLayoutHasNoFindingsAndAChangeIsStillFound() throws {
        let original = try Fixtures.text(Fixtures.bundled.appendingPathComponent("valid/qubes-default.xml"))
        var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let tag = try #require(lines.firstIndex { $0.contains("<tag ") })
        let tagsEnd = try #require(lines[tag...].firstIndex { $0.contains("</tags>") })
        #expect(tagsEnd - tag >= 2, "the first <tags> holds two tags or more")
        lines[tag..<tagsEnd].reverse()
        lines.insert("      <devices class=\"usb\"/>", at: tagsEnd + 1)
        // Canonical lines but for the tag order and an empty device class.
        let canonical = lines.joined(separator: "\n")
        #expect(StoreCheck.check(Array(canonical.utf8)).warnings.isEmpty, "\(StoreCheck.check(Array(canonical.utf8)).warnings)")
        // Another layout: every line indented with a tab.
        let reordered = lines.map { "\t" + $0.drop { $0 == " " } }.joined(separator: "\n")
        #expect(Array(reordered.utf8) != Array(original.utf8))
        let report = StoreCheck.check(Array(reordered.utf8))
        #expect(report.errors.isEmpty && report.warnings.isEmpty, "\(report.warnings)")

        for text in [canonical, reordered] {
            let changed = text.replacingOccurrences(of: "<property name=\"maxmem\">8000</property>", with: "<property name=\"maxmem\">08000</property>")
            #expect(changed != text)
            let findings = StoreCheck.check(Array(changed.utf8)).warnings
            #expect(!findings.isEmpty && findings.allSatisfy { $0.field == "maxmem" && $0.value == "08000" }, "\(findings)")
        }
    }

    /// A device without backend-domain (no attribute, or an empty one: qubesd looks up only a non-empty
    /// name) loads, but qubesd writes it as `backend-domain="*"`, which the next load drops: qubesd's own
    /// save is not a fixed point there, so check warns, naming the qube, the class and the port.
    @Test(arguments: ["", " backend-domain=\"\""])
    func aDeviceWithoutBackendIsWarnedAndLostByTheNextLoad(_ replacement: String) throws {
        let original = try Fixtures.text(Fixtures.bundled.appendingPathComponent("valid/qubes-default.xml"))
        let first = try #require(original.range(of: " backend-domain=\"dom0\""))
        let bytes = Array(original.replacingCharacters(in: first, with: replacement).utf8)
        let report = StoreCheck.check(bytes)
        let warning = try #require(report.warnings.first { $0.message.contains("next load drops the assignment") }, "\(report.warnings)")
        #expect(warning.qube == "sys-net" && warning.field == "devices.pci", "\(report.warnings)")
        let loaded = try Store.load(xml: bytes).store
        let count = loaded["sys-net"]?.devices["pci"]?.count ?? 0
        #expect(warning.value == loaded["sys-net"]?.devices["pci"]?.first { $0.backendDomain == nil }?.port)
        let saved = try XMLWriter.write(loaded)
        let reloaded = try Store.load(xml: saved).store
        #expect(count > 0 && (reloaded["sys-net"]?.devices["pci"]?.count ?? 0) == count - 1)
        // The second save is a fixed point.
        #expect(try XMLWriter.write(reloaded) == XMLWriter.write(try Store.load(xml: XMLWriter.write(reloaded)).store))
    }

    @Test func findingsNameQubeFieldAndValue() throws {
        let bytes = try Fixtures.bytes(Fixtures.bundled.appendingPathComponent("invalid/prop-bool-yes.xml"))
        let report = StoreCheck.check(bytes)
        let autostart = report.warnings.first { $0.field == "autostart" }
        #expect(autostart?.qube == "work")
        #expect(autostart?.value == "yes")
        #expect(autostart?.message == "changed to 'True' on load")
    }

    @Test func shardRangeAndDuplicateUUIDsAreWarned() throws {
        var text = try Fixtures.text(Fixtures.bundled.appendingPathComponent("valid/qubes-mini.xml"))
        text = text.replacingOccurrences(of: "<property name=\"qid\">14</property>", with: "<property name=\"qid\">8100</property>")
        let report = StoreCheck.check(Array(text.utf8))
        #expect(report.warnings.contains { $0.field == "qid" && $0.value == "8100" })
        let duplicate = try Fixtures.bytes(Fixtures.bundled.appendingPathComponent("invalid/domain-duplicate-uuid.xml"))
        #expect(StoreCheck.check(duplicate).warnings.contains { $0.field == "uuid" })
    }

    @Test func emptyDispVMTemplateIsRejectedInsteadOfLooping() throws {
        var text = try Fixtures.text(Fixtures.bundled.appendingPathComponent("valid/qubes-mini.xml"))
        text = text.replacingOccurrences(of: "<property name=\"template\">default-dvm</property>", with: "<property name=\"template\"></property>")
        #expect(throws: StoreError.self) { try Store.load(xml: Array(text.utf8)) }
        do {
            _ = try Store.load(xml: Array(text.utf8))
        } catch let error as StoreError {
            #expect(error.kind == .qubesPropertyValueError)
            #expect(error.qube != nil && error.field == "template")
        }
    }
}

/// The large stores live in the shared fixture folder only.
@Suite(.enabled(if: Fixtures.shared != nil, "shared fixtures (qubes-scaled-1000/5000) not found next to the repository"))
struct LargeFixtureTests {
    @Test(arguments: ["qubes-scaled-1000", "qubes-scaled-5000"])
    func largeStoresMatchReference(_ name: String) throws {
        let folder = Fixtures.shared!.appendingPathComponent("valid")
        let loaded = try Fixtures.load(try Fixtures.bytes(folder.appendingPathComponent(name + ".xml")))
        let dump = String(decoding: StoreDump.json(loaded.store).canonicalBytes(), as: UTF8.self)
        #expect(dump == (try Fixtures.text(folder.appendingPathComponent(name + ".dump.json"))))
        let saved = String(decoding: try XMLWriter.write(loaded.store), as: UTF8.self)
        #expect(Fixtures.tagsSorted(saved) == Fixtures.tagsSorted(try Fixtures.text(folder.appendingPathComponent(name + ".resave.xml"))))
    }
}
