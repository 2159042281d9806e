import AdminServer
import Foundation
import QubesAdmin
import Testing

/// A reply that never ends is refused within its size limit or its deadline (docs/admin-api.md, "Limits").
@Suite struct EndlessReplyTests {
    static func server(_ mode: AdminSocketServer.Mode, _ name: String) throws -> AdminSocketServer {
        let files = try temporaryStore()
        let directory = files.directory + "/" + name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try AdminSocketServer(directory: directory, backend: OfflineBackend(path: files.path), mode: mode)
    }

    /// As fast as the socket goes: refused once past the size limit, not read on.
    @Test func aFloodIsRefusedAtTheSizeLimit() throws {
        let server = try Self.server(.endless(Array("0\u{0}".utf8) + Array(repeating: 0x61, count: 65534), interval: 0), "flood")
        defer { server.stop() }
        let transport = AdminTransport(socketPath: server.socketPath, timeout: 5, maximumReplySize: 4 << 20)
        let started = Date()
        #expect(throws: AdminError.malformedReply(call: "admin.label.List+", detail: "reply larger than \(4 << 20) bytes")) {
            try transport.send(AdminRequest(method: "admin.label.List"))
        }
        #expect(Date().timeIntervalSince(started) < 5)
    }

    /// A byte every 20 ms never trips the wait for each part: the deadline of the whole reply ends it.
    @Test func aTrickleIsRefusedAtTheDeadline() throws {
        let server = try Self.server(.endless([0x30], interval: 0.02), "trickle")
        defer { server.stop() }
        let transport = AdminTransport(socketPath: server.socketPath, timeout: 5, deadline: 1)
        let started = Date()
        #expect(throws: AdminError.timeout(call: "admin.label.List+", seconds: 1)) {
            try transport.send(AdminRequest(method: "admin.label.List"))
        }
        let elapsed = Date().timeIntervalSince(started)
        #expect(elapsed >= 1 && elapsed < 3, "\(elapsed) s")
    }
}
