import AdminServer
import Foundation
import QrexecPolicy
import QubesAdmin
import QubesStore
import Testing

@Suite struct SystemInfoTests {
    /// The Admin API (through a real socket) and the store describe the same system.
    @Test func socketAndStoreAgree() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lq-sysinfo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/qubes.xml"
        try FileManager.default.copyItem(atPath: PolicyFixtures.path("stores/qubes-mini.xml"), toPath: path)
        let server = try AdminSocketServer(directory: directory, backend: OfflineBackend(path: path))
        defer { server.stop() }
        let viaSocket = try SystemInfo(backend: AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 10)))
        let fromStore = try SystemInfo(store: try Store.load(xml: try PolicyFixtures.bytes("stores/qubes-mini.xml")).store)
        #expect(viaSocket.qubes.count == fromStore.qubes.count)
        for var qube in fromStore.qubes {
            qube.tags.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            #expect(viaSocket[qube.name] == qube, "\(qube.name)")
        }
    }

    /// The JSON reader's fast paths (strings without escapes, duplicate keys looked for without a set
    /// in small objects) refuse and read what the slow paths did.
    @Test func systemInfoJSONEdges() throws {
        let many = (0..<20).map { "\"q\($0)\": {}" }
        #expect(throws: PolicyError.self) { try SystemInfo(json: Array("{\"domains\": {\(many.joined(separator: ", ")), \"q3\": {}}}".utf8)) }
        #expect(throws: PolicyError.self) { try SystemInfo(json: Array("{\"domains\": {\"a\": {}, \"a\": {}}}".utf8)) }
        #expect(throws: PolicyError.self) { try SystemInfo(json: Array("{\"domains\": {\"a\tb\": {}}}".utf8)) }
        #expect(throws: PolicyError.self) { try SystemInfo(json: [UInt8]("{\"domains\": {\"".utf8) + [0xFF] + [UInt8]("\": {}}}".utf8)) }
        let system = try SystemInfo(json: Array("{\"domains\": {\"w\\u00e9rk\": {\"tags\": [\"a\\\"b\", \"plain\"]}, \(many.joined(separator: ", "))}}".utf8))
        #expect(system.qubes.count == 21)
        #expect(system.qubes[0].name == "w\u{E9}rk")
        #expect(system.qubes[0].tags == ["a\"b", "plain"])
    }
}
