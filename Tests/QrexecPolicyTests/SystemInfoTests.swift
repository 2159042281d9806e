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
}
