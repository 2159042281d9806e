import Foundation
import LQCommon
import QrexecPolicy
import QubesStore
import Testing

/// The qrexec policy fixtures made with the reference evaluator (copied into this target).
enum PolicyFixtures {
    static let root: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func bytes(_ relative: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: root.appendingPathComponent(relative))) }

    static func text(_ relative: String) throws -> String { String(decoding: try bytes(relative), as: UTF8.self) }

    /// The system of the worked examples.
    static let system: SystemInfo = try! SystemInfo(json: bytes("system-info.json"))

    /// One worked example: the query and the reference answer; paths in the
    /// query are relative to `folder` (a folder under Fixtures, "" for Fixtures itself).
    struct Example: Sendable, CustomTestStringConvertible {
        var number: Int
        var query: JSONValue
        var expected: JSONValue
        var folder: String = ""

        var testDescription: String { "#\(number) \(query["id"]?.text ?? "")" }

        func path(_ relative: String) -> String { PolicyFixtures.path(folder.isEmpty ? relative : folder + "/" + relative) }

        /// The policy directories, in priority order.
        var directories: [String] {
            switch query["policy"] {
            case .array(let list)?: return list.compactMap(\.text).map(path)
            case .string(let one)?: return [path(one)]
            default: return [path("policy.d")]
            }
        }

        var call: Call {
            let argument = query["argument"]?.text ?? ""
            let service = query["service"]?.text ?? ""
            let target = query["target"]?.text ?? ""
            let source = query["source"]?.text ?? ""
            let requested = query["requested_source"]?.text ?? ""
            return argument.isEmpty ? Call(serviceAndArgument: service, source: source, target: target, requestedSource: requested)
                : Call(service: service, argument: argument, source: source, target: target, requestedSource: requested)
        }

        var loader: PolicyLoader {
            PolicyLoader(directories: directories, legacyDirectory: path(query["legacy"]?.text ?? "legacy"))
        }

        /// The system the query names (`system_info`), else the folder's `system-info.json`.
        var system: SystemInfo {
            try! SystemInfo(json: [UInt8](Data(contentsOf: URL(fileURLWithPath: path(query["system_info"]?.text ?? "system-info.json")))))
        }
    }

    /// The queries of `folder`/queries.json with the answers of `folder`/expected-output.jsonl.
    static func examples(in folder: String) -> [Example] {
        let prefix = folder.isEmpty ? "" : folder + "/"
        guard case .array(let queries) = try! JSONReader.parse(bytes(prefix + "queries.json")) else { return [] }
        let answers = try! text(prefix + "expected-output.jsonl").split(separator: "\n").map { try JSONReader.parse(Array($0.utf8)) }
        precondition(queries.count == answers.count, "\(folder): one answer per query")
        return zip(queries, answers).enumerated().map { offset, pair in
            Example(number: offset + 1, query: pair.0, expected: pair.1, folder: folder)
        }
    }

    /// The 107 worked examples of spec §11, in order.
    static let examples: [Example] = examples(in: "")

    /// Decides `call` with the policy `loader` reads against the example system.
    static func decide(_ call: Call, _ loader: PolicyLoader, system: SystemInfo = PolicyFixtures.system) -> Decision {
        switch Result(catching: { () throws(PolicyError) in try loader.policy() }) {
        case .success(let policy): return PolicyEvaluator(policy: policy, system: system).evaluate(call)
        case .failure(let error): return .loadFailure(error)
        }
    }

    /// A policy read from text lines, as one file `/p/30-test.policy`.
    static func policy(_ lines: String...) throws -> Policy {
        try PolicyLoader(directories: ["/p"], legacyDirectory: "/legacy",
                         fileSystem: MemoryPolicyFiles(["/p/30-test.policy": lines.joined(separator: "\n")])).policy()
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        guard case .members(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The string, `nil` for anything else (JSON null included).
    var text: String? { if case .string(let value) = self { value } else { nil } }
    var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int: Int? { if case .integer(let value) = self { Int(value) } else { nil } }
    var strings: [String]? { if case .array(let items) = self { items.compactMap(\.text) } else { nil } }
}
