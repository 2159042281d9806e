import Foundation
import Testing

/// `lq policy …` through the built binary.
@Suite struct PolicyCommandTests {
    static let fixtures = LQ.repository.appendingPathComponent("Tests/QrexecPolicyTests/Fixtures").path

    static func fixture(_ path: String) -> String { fixtures + "/" + path }

    static let system = ["--system-info", fixture("system-info.json"), "--policy-dir", fixture("policy.d"),
                         "--legacy-dir", fixture("legacy")]

    static func run(_ arguments: [String]) throws -> LQ.Result { try LQ.run(arguments: arguments) }

    @Test func evalPrintsTheDecisionAsJSON() throws {
        let result = try Self.run(["policy", "eval", "lq.Arg+alpha", "work", "vault", "--json"] + Self.system)
        #expect(result.status == 0)
        let last = try #require(result.stdout.split(separator: "\n").last)
        #expect(last.hasPrefix("{\"autostart\": true, \"decision\": \"allow\""))
        #expect(last.contains("\"target\": \"vault\""))
        #expect(last.contains("\"line\": 5"))
    }

    @Test func argumentWithOrWithoutPlusAndDefaultTarget() throws {
        let plain = try Self.run(["policy", "eval", "lq.Def2", "work"] + Self.system)
        #expect(plain.status == 0)
        #expect(plain.stdout.hasPrefix("ask {@dispvm:core-dvm"))
        let batch = FileManager.default.temporaryDirectory.appendingPathComponent("lq-calls-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: batch) }
        try Data("""
            [{"service": "lq.Arg", "argument": "alpha", "source": "work", "target": "vault"},
             {"service": "lq.Arg", "argument": "+beta", "source": "work", "target": "vault"},
             {"service": "lq.Def", "source": "work", "target": ""}]
            """.utf8).write(to: batch)
        let result = try Self.run(["policy", "eval", "--calls", batch.path, "--json"] + Self.system)
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].contains("\"decision\": \"allow\""))
        #expect(lines[1].contains("\"decision\": \"deny\""))
        #expect(lines[2].contains("\"target\": \"core-keys\""))
    }

    @Test func brokenPolicyDeniesEveryCallAndExitsOne() throws {
        let result = try Self.run(["policy", "eval", "lq.E", "work", "vault", "--json", "--system-info", Self.fixture("system-info.json"),
                                   "--policy-dir", Self.fixture("errors/unknown-action")])
        #expect(result.status == 1)
        #expect(result.stdout.contains("\"decision\": \"deny\""))
        #expect(result.stdout.contains("policy failed to load"))
        #expect(result.stderr.contains("errors/unknown-action/30-case.policy:1:26: invalid action: permit"))
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try Self.run(["policy", "eval", "lq.E", "work", "vault"]).status == 2)
        #expect(try Self.run(["policy", "eval", "--store", "a", "--system-info", "b", "s", "a", "b"]).status == 2)
        #expect(try Self.run(["policy", "eval", "--system-info", "b"]).status == 2)
    }

    @Test func lintExitsOneOnFindingsAndZeroWhenClean() throws {
        let planted = try Self.run(["policy", "lint", Self.fixture("lint/planted"), "--legacy-dir", "/nonexistent"])
        #expect(planted.status == 1)
        #expect(planted.stderr.contains("lint/planted/40-broken.policy:1:43: error: invalid action: permit"))
        #expect(planted.stderr.contains("lint/planted/30-planted.policy:3: warning: rule can never match"))
        #expect(planted.stderr.contains(
            "lint/planted/30-planted.policy:9: warning: rule can never match, a call never comes from '@dispvm:core-dvm'"))
        let clean = try Self.run(["policy", "lint", Self.fixture("lint/clean"), "--json"])
        #expect(clean.status == 0)
        #expect(clean.stdout == "[]\n")
    }

    @Test func shardsWritesTheFileAtomically() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-shards-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try Self.run(["policy", "shards", "--store", Self.fixture("stores/qubes-mini.xml"), "-o", folder.path])
        #expect(result.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["20-lq-shards.policy"])
        let attributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("20-lq-shards.policy").path)
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
    }

    @Test func matrixAsJSON() throws {
        let result = try Self.run(["policy", "matrix", "qubes.Filecopy", "--store", Self.fixture("stores/qubes-mini.xml"),
                                   "--policy-dir", Self.fixture("shards"), "--json"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("\"service\": \"qubes.Filecopy\""))
        #expect(result.stdout.contains("\"call_target\": \"@default\""))
    }

    @Test func matrixAsTextHasARowPerSourceAndAColumnPerTarget() throws {
        let arguments = ["policy", "matrix", "qubes.Filecopy", "--store", Self.fixture("stores/qubes-mini.xml"), "--policy-dir", Self.fixture("shards")]
        let text = try Self.run(arguments)
        let json = try Self.run(arguments + ["--json"])
        #expect(text.status == 0 && json.status == 0)
        let lines = text.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let header = try #require(lines.first)
        #expect(header.prefix(3) == ["source", "\\", "target"])
        let cells = json.stdout.components(separatedBy: "\"call_target\"").count - 1
        #expect((lines.count - 1) * (header.count - 3) == cells, "every cell of the JSON is in the table")
        #expect(lines.dropFirst().allSatisfy { $0.dropFirst().allSatisfy { ["allow", "ask", "deny", "error"].contains($0) } })
    }
}
