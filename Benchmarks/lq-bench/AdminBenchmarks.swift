import AdminServer
import Glibc
import QubesAdmin
import QubesStore

/// Admin API: property Get over a real socket against the test server (and
/// the server's own time, the same Get in-process), and an offline batch of
/// 1000 property Sets with one save on the 1029-qube store.
func adminBenchmarks(_ folder: String) throws {
    guard let bytes = readFile("\(folder)/qubes-scaled-1000.xml") else {
        print("admin: qubes-scaled-1000.xml not found in \(folder), skipped")
        return
    }
    let directory = temporaryDirectory()
    let path = directory + "/qubes.xml"
    let clock = ContinuousClock()
    func write() throws { try StoreFile(path: path).replace(with: bytes, expecting: nil) }
    defer {
        unlink(path)
        rmdir(directory)
    }
    try write()
    let offline = OfflineBackend(path: path)
    let server = try AdminSocketServer(directory: directory, backend: offline)
    defer { server.stop() }
    let client = AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath))
    let qubes = try offline.qubes().map(\.name).filter { $0 != "dom0" }
    let calls = 5000
    _ = try client.property("memory", of: qubes[0])
    let overSocket = try clock.measure { for index in 0..<calls { _ = try client.property("memory", of: qubes[index % qubes.count]) } }
    let dispatcher = AdminDispatcher(backend: offline)
    let requests = try (0..<calls).map {
        try AdminRequest(method: "admin.vm.property.Get", argument: "memory", destination: qubes[$0 % qubes.count]).encoded()
    }
    let inProcess = clock.measure { for request in requests { _ = dispatcher.reply(to: request) } }
    let socketSeconds = seconds(overSocket)
    let serverSeconds = seconds(inProcess)
    print("admin property Get: \(Int(Double(calls) / socketSeconds)) calls/s over the socket, "
        + "server alone \(Int(Double(calls) / serverSeconds)) calls/s, "
        + "client+socket \(format((socketSeconds - serverSeconds) / Double(calls) * 1e6)) µs per call")
    let batch = try measure(10) {
        try write()
        let backend = OfflineBackend(path: path)
        try backend.batch {
            for index in 0..<1000 { try backend.setProperty("memory", of: qubes[index % qubes.count], to: String(300 + index)) }
        }
    }
    let rewrite = try measure(10) { try write() }
    print("offline batch of 1000 property Sets + one save on \(qubes.count + 1) qubes: "
        + "\(format(batch.min - rewrite.min)) / \(format(batch.median - rewrite.median)) ms (min/med; file reset excluded)")
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
