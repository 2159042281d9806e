import Foundation
import TestSupport
import Testing

/// Runs the built `lq` binary, as users and other tools do.
enum LQ {
    typealias Result = ProgramResult
    static let binary = Repository.product("lq")
    static let repository = Repository.root
    /// The release `lq --version` names first, which names the template package.
    static func release() throws -> String { String(try run("--version").stdout.prefix { $0 != " " }) }

    static func run(_ arguments: String...) throws -> Result { try run(arguments: arguments) }

    static func run(arguments: [String]) throws -> Result { try ProgramResult.run(binary, arguments) }

    /// The path of a qubes.xml fixture.
    static func fixture(_ path: String) -> String { FixtureFolder.stores.path(path) }

    /// A copy of a qubes.xml fixture in a fresh temporary folder.
    static func copy(_ path: String) throws -> URL { try FixtureFolder.stores.copy(path) }
}

@Suite struct StoreCommandTests {
    @Test func checkOfTheBundledExampleSucceedsWithSummary() throws {
        let result = try LQ.run("store", "check", LQ.repository.appendingPathComponent("examples/qubes-default.xml").path)
        #expect(result.status == 0)
        #expect(result.stdout.contains("19 (1 AdminVM, 10 AppVM, 5 TemplateVM, 3 DispVM)"))
        #expect(result.stderr.isEmpty)
    }

    @Test func theReadmesLVMExampleIsQubesdsSaveAndPlans() throws {
        let example = LQ.repository.appendingPathComponent("examples/qubes-lvm-default.xml")
        #expect(try Data(contentsOf: example) == (try Data(contentsOf: URL(fileURLWithPath: LQ.fixture("installs/qubes-lvm-default.xml")))))
        let check = try LQ.run("store", "check", example.path)
        #expect(check.status == 0 && check.stderr.isEmpty, "\(check.stderr)")
        #expect(check.stdout.contains("pools: varlibqubes, vm-pool, linux-kernel"))
        let plan = try LQ.run("plan", "-f", LQ.repository.appendingPathComponent("examples/liteqube.yaml").path, "--store", example.path)
        #expect(plan.status == 0, "\(plan.stderr)")
    }

    @Test func rejectedStoreExitsOneNamingFileQubeFieldAndValue() throws {
        let path = LQ.fixture("invalid/label-unknown-name.xml")
        let result = try LQ.run("store", "check", path)
        #expect(result.status == 1)
        #expect(result.stderr.contains(path))
        #expect(result.stderr.contains("QubesLabelNotFoundError: Label does not exist: pink (qube 'work', field 'label', value 'pink')"))
        let dump = try LQ.run("store", "dump", path)
        #expect(dump.status == 1)
        #expect(dump.stdout.isEmpty)
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try LQ.run("store", "frobnicate").status == 2)
        #expect(try LQ.run("store", "check").status == 2)
        #expect(try LQ.run("store", "check", "a.xml", "--no-such-flag").status == 2)
    }

    @Test func missingFileIsAFinding() throws {
        let result = try LQ.run("store", "dump", "/nonexistent/qubes.xml")
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/qubes.xml"))
    }

    @Test func dumpPrintsTheReferenceBytes() throws {
        let result = try LQ.run("store", "dump", "--effective", LQ.fixture("valid/qubes-liteqube.xml"))
        #expect(result.status == 0)
        #expect(result.stdout == (try FixtureFolder.stores.text("valid/qubes-liteqube.effective.json")))
    }

    @Test func checkJSONAndStrict() throws {
        let path = LQ.fixture("invalid/prop-bool-yes.xml")
        let json = try LQ.run("store", "check", "--json", path)
        #expect(json.status == 0)
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: [[String: Any]]]
        #expect(report?["errors"]?.isEmpty == true)
        let warning = report?["warnings"]?.first { $0["field"] as? String == "autostart" }
        #expect(warning?["qube"] as? String == "work")
        #expect(warning?["value"] as? String == "yes")
        #expect(try LQ.run("store", "check", "--strict", path).status == 1)
        #expect(try LQ.run("store", "check", "--strict", LQ.fixture("valid/qubes-mini.xml")).status == 0)
    }

    @Test func fmtRewritesInPlaceAndToAnotherFile() throws {
        let input = try LQ.copy("invalid/prop-bool-yes.xml")
        let expected = try FixtureFolder.stores.text("invalid/prop-bool-yes.resave.xml")
        let output = input.deletingLastPathComponent().appendingPathComponent("out.xml")
        #expect(try LQ.run("store", "fmt", input.path, "-o", output.path).status == 0)
        #expect(try String(contentsOf: output, encoding: .utf8) == expected)
        #expect(try LQ.run("store", "fmt", input.path).status == 0)
        #expect(try String(contentsOf: input, encoding: .utf8) == expected)
        // Canonical input stays byte for byte the same.
        #expect(try LQ.run("store", "fmt", input.path).status == 0)
        #expect(try String(contentsOf: input, encoding: .utf8) == expected)
        try FileManager.default.removeItem(at: input.deletingLastPathComponent())
    }

    @Test func fmtRefusesToSaveWhatQubesdCannotSave() throws {
        let input = try LQ.copy("invalid/label-missing-color.xml")
        let before = try Data(contentsOf: input)
        let result = try LQ.run("store", "fmt", input.path)
        #expect(result.status == 1)
        #expect(result.stderr.contains("TypeError"))
        #expect(try Data(contentsOf: input) == before)
        try FileManager.default.removeItem(at: input.deletingLastPathComponent())
    }
}
