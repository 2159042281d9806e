// The policy benchmark set on disk, for measuring whole processes against the
// reference evaluator (scripts/reference/policy-speed):
// `lq-bench --export-policy DIR` writes DIR/policy.d/*.policy,
// DIR/system-info.json (internal.GetSystemInfo's shape) and DIR/calls.json.
import Glibc
import LQCommon
import QrexecPolicy
import QubesStore

extension PolicyBenchmark {
    /// The same set `run` measures (same seed), written under `folder`.
    static func export(to folder: String) throws {
        var random = SplitMix64(seed: 2026)
        let system = try system(&random)
        let files = files(&random)
        let calls = calls(&random)
        mkdir(folder, 0o755)
        let directory = folder + "/policy.d"
        mkdir(directory, 0o755)
        for (path, text) in files {
            try write(Array(text.utf8), to: directory + "/" + path.dropFirst("/bench/".count))
        }
        let domains = system.qubes.map { qube in
            JSONValue.Member(qube.name, .object([
                "type": .string(qube.type), "tags": .array(qube.tags.map(JSONValue.string)),
                "template_for_dispvms": .bool(qube.templateForDispVMs), "default_dispvm": .string(qube.defaultDispVM),
                "power_state": .string(qube.powerState), "uuid": .string(qube.uuid), "internal": qube.isInternal ? .string("1") : .null,
            ]))
        }
        try write(JSONValue.object(["domains": .members(domains)]).canonicalBytes(), to: folder + "/system-info.json")
        let list = calls.map { call in
            JSONValue.object([
                "service": .string(call.service), "argument": .string(call.argument), "source": .string(call.source),
                "target": .string(call.target),
            ])
        }
        try write(JSONValue.array(list).canonicalBytes(), to: folder + "/calls.json")
        print("\(folder): \(files.count) policy files, \(system.qubes.count) qubes, \(calls.count) calls")
    }

    private struct WriteFailure: Error, CustomStringConvertible {
        var description: String
    }

    private static func write(_ bytes: [UInt8], to path: String) throws {
        guard let file = fopen(path, "wb") else { throw WriteFailure(description: "\(path): cannot create") }
        defer { fclose(file) }
        guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw WriteFailure(description: "\(path): short write") }
    }
}
