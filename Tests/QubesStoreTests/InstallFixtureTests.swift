import Foundation
import LQCommon
import QubesStore
import Testing

/// Stores shaped as real installs hold them (LVM thin and ZFS pools, the
/// callback driver, no pools, no default kernel, an R2 file), each answered
/// by the real qubesd object model (`installs/answers.json`, written by
/// scripts/reference/store-fixtures; docs/qubes-xml.md, "Fixtures of real installs").
@Suite struct InstallFixtureTests {
    /// One file's answer, kept as JSON text (test arguments must be Sendable).
    struct Answer: Sendable, CustomStringConvertible {
        let file: String
        let text: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: text)) as? [String: Any] ?? [:] }
        var description: String { file }
    }

    static let folder = Fixtures.bundled.appendingPathComponent("installs")

    static let answers: [Answer] = {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("answers.json")),
            let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else { return [] }
        return list.map { entry in
            Answer(file: entry["file"] as! String, text: (try? JSONSerialization.data(withJSONObject: entry)) ?? Data())
        }
    }()

    /// Loads as qubesd does on a host without the callback driver's configuration.
    static func load(_ answer: Answer) throws -> LoadedStore {
        let bytes = try Fixtures.bytes(folder.appendingPathComponent(answer.file))
        return try Store.load(xml: bytes, options: LoadOptions(randomUUID: { "00000000-0000-4000-8000-000000000001" }, hasCallbackConfiguration: false))
    }

    /// `value` as JSON text with sorted keys, for comparing the reference's objects with lq's dump.
    static func canonical(_ value: Any?) -> String {
        guard let value else { return "absent" }
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
    }

    @Test func everyInstallFixtureHasAnAnswer() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".xml") }
        #expect(Set(files) == Set(Self.answers.map(\.file)))
        #expect(files.count >= 14)
    }

    @Test(arguments: answers)
    func loadOutcomeMatchesQubesd(_ answer: Answer) throws {
        let json = answer.json
        guard json["verdict"] as? String == "load" else {
            do {
                _ = try Self.load(answer)
                Issue.record("qubesd refuses it (\(json["exception"]!): \(json["message"]!)) but lq loaded it")
            } catch let error as StoreError {
                #expect(error.kind.rawValue == json["exception"] as? String, "\(error)")
                #expect(error.message == json["message"] as? String, "\(error)")
            }
            return
        }
        let loaded = try Self.load(answer)
        let dumpText = StoreDump.json(loaded.store, effective: true).canonicalBytes()
        let dump = try JSONSerialization.jsonObject(with: Data(dumpText)) as! [String: Any]
        #expect(Self.canonical(dump["pools"]) == Self.canonical(json["pools"]), "pools")
        let effective = (dump["global"] as! [String: Any])["effective"] as! [String: Any]
        for (name, value) in json["global"] as! [String: Any] {
            #expect(Self.canonical(effective[name]) == Self.canonical(value), "global \(name)")
        }
        var volumes: [String: Any] = [:]
        for qube in dump["domains"] as! [[String: Any]] { volumes[qube["name"] as! String] = qube["volumes"] }
        let expectedVolumes = json["volumes"] as! [String: Any]
        #expect(Set(volumes.keys) == Set(expectedVolumes.keys))
        for (qube, value) in expectedVolumes {
            #expect(Self.canonical(volumes[qube]) == Self.canonical(value), "volumes of \(qube)")
        }
        let log = json["log"] as! [String]
        #expect(loaded.notes.map(\.level.rawValue) == log.map { String($0.prefix { $0 != " " }) }, "\(loaded.notes) vs \(log)")
    }

    @Test(arguments: answers.filter { $0.json["resave"] != nil })
    func resaveMatchesQubesd(_ answer: Answer) throws {
        let saved = String(decoding: try XMLWriter.write(try Self.load(answer).store), as: UTF8.self)
        #expect(Fixtures.tagsSorted(saved) == Fixtures.tagsSorted(answer.json["resave"] as! String))
    }

    @Test func defaultLVMInstallIsSavedByQubesdByteForByte() throws {
        let answer = try #require(Self.answers.first { $0.file == "qubes-lvm-default.xml" })
        let bytes = try Fixtures.bytes(Self.folder.appendingPathComponent(answer.file))
        #expect(Fixtures.tagsSorted(String(decoding: bytes, as: UTF8.self)) == Fixtures.tagsSorted(answer.json["resave"] as! String))
        let report = StoreCheck.check(bytes, options: LoadOptions(hasCallbackConfiguration: false))
        #expect(report.errors.isEmpty && report.warnings.isEmpty, "\(report.errors) \(report.warnings)")
    }

    @Test func aFileOfAnOlderReleaseIsAnErrorNotAnEmptySystem() throws {
        let bytes = try Fixtures.bytes(Self.folder.appendingPathComponent("r2-collection.xml"))
        let old = StoreCheck.check(bytes, options: LoadOptions(hasCallbackConfiguration: false))
        #expect(old.errors.map(\.field) == ["root"])
        #expect(old.errors.first?.value == "QubesVmCollection")
        // A renamed root whose children qubesd reads loads them: a warning, no error.
        let renamed = try Fixtures.bytes(Fixtures.bundled.appendingPathComponent("invalid/xml-root-renamed.xml"))
        let report = StoreCheck.check(renamed, options: LoadOptions(hasCallbackConfiguration: false))
        #expect(report.errors.isEmpty && report.warnings.map(\.field).contains("root"))
    }

    @Test func aCallbackPoolLoadsWhereTheHostHasItsConfiguration() throws {
        let bytes = try Fixtures.bytes(Self.folder.appendingPathComponent("callback-pool.xml"))
        let loaded = try Store.load(xml: bytes, options: LoadOptions(hasCallbackConfiguration: true))
        #expect(loaded.store.pools["cb"]?.attributes.map(\.name) == ["name", "driver", "conf_id"])
    }
}
