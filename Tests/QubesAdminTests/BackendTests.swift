import Foundation
import QubesAdmin
import QubesStore
import AdminServer
import Testing

/// The same scenario through the socket (client → test server → offline
/// backend) and through the offline backend directly.
@Suite struct BackendTests {
    static func scenario(_ backend: Backend) throws {
        try backend.create(Store.NewQube(vmClass: .templateVM, name: "debian-core-2", label: "black"))
        for feature in try backend.features(of: "debian-core") {
            try backend.setFeature(feature, to: try backend.feature(feature, of: "debian-core"), of: "debian-core-2")
        }
        try backend.create(Store.NewQube(vmClass: .appVM, name: "lq-app", label: "red", template: "debian-core-2", pool: "liteqube-file"))
        try backend.create(Store.NewQube(vmClass: .appVM, name: "lq-dvm", label: "gray", template: "debian-core-2", pools: ["private": "liteqube-file"]))
        try backend.setProperty("template_for_dispvms", of: "lq-dvm", to: "True")
        try backend.create(Store.NewQube(vmClass: .dispVM, name: "lq-net", label: "gray", template: "lq-dvm"))
        try backend.setProperty("provides_network", of: "lq-net", to: "True")
        try backend.setProperty("netvm", of: "lq-net", to: "")
        try backend.setProperty("memory", of: "lq-net", to: "240")
        try backend.setProperty("maxmem", of: "lq-net", to: "0")
        try backend.setProperty("vcpus", of: "lq-net", to: "1")
        try backend.setProperty("virt_mode", of: "lq-net", to: "hvm")
        try backend.setProperty("netvm", of: "lq-app", to: "lq-net")
        try backend.setProperty("default_dispvm", of: "lq-app", to: "lq-dvm")
        try backend.setFeature("service.lq-net", to: "1", of: "lq-net")
        try backend.setFeature("prohibit-start", to: "replaced by lq-net", of: "sys-net")
        try backend.removeFeature("service.lq-net", of: "lq-net")
        try backend.addTag("liteqube", to: "lq-net")
        try backend.addTag("liteqube", to: "lq-app")
        try backend.removeTag("liteqube", from: "lq-app")
        let nic = DeviceAssignment(
            backendDomain: "dom0", port: "00_14.3", identity: "8086:a0f0::p028000", mode: .required, options: [("no-strict-reset", "True")])
        try backend.assign(nic, deviceClass: "pci", to: "lq-net")
        try backend.setProperty("default_netvm", of: nil, to: "lq-net")
        try backend.resetProperty("default_netvm", of: nil)
        try backend.setVolumeReadWrite("private", of: "lq-app", to: false)
        try backend.create(Store.NewQube(vmClass: .appVM, name: "lq-gone", label: "blue", template: "debian-core-2"))
        try backend.remove("lq-gone")
    }

    @Test func socketAndOfflineEndInTheSameBytes() throws {
        let viaSocket = try temporaryStore()
        let direct = try temporaryStore()
        let server = try AdminSocketServer(directory: viaSocket.directory, backend: OfflineBackend(path: viaSocket.path, random: .seeded(42)))
        defer { server.stop() }
        try Self.scenario(AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 10)))
        try Self.scenario(OfflineBackend(path: direct.path, random: .seeded(42)))
        let socketBytes = try Data(contentsOf: URL(fileURLWithPath: viaSocket.path))
        let directBytes = try Data(contentsOf: URL(fileURLWithPath: direct.path))
        #expect(socketBytes == directBytes)
        let store = try Store.load(xml: [UInt8](directBytes)).store
        let net = try #require(store["lq-net"])
        #expect(net.vmClass == .dispVM && net.properties["template"] == "lq-dvm" && net.properties["memory"] == "240")
        #expect(net.devices["pci"]?.first?.options.first?.value == "True")
        #expect(net.tags.contains("liteqube") && net.tags.contains("created-by-dom0") && net.tags.contains("guivm-dom0"))
        #expect(net.features["servicevm"] == "1")
        #expect(store["lq-gone"] == nil)
        #expect(store["lq-app"]?.volumes.first { $0.name == "private" }?.pool == "liteqube-file")
        #expect(store["lq-app"]?.volumes.first { $0.name == "root" }?.source == "vm-templates/debian-core-2/root")
        #expect(store["lq-dvm"]?.volumes.first { $0.name == "volatile" }?.pool == "varlibqubes")
        #expect(store.globalProperties["default_netvm"] == nil)
        #expect(StoreCheck.check([UInt8](directBytes)).warnings.isEmpty)
    }

    @Test func readsAgreeThroughTheSocket() throws {
        let files = try temporaryStore()
        let offline = OfflineBackend(path: files.path)
        let server = try AdminSocketServer(directory: files.directory, backend: offline)
        defer { server.stop() }
        let client = AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 10))
        #expect(try client.qubes() == offline.qubes())
        #expect(try client.qubes().first == QubeSummary(name: "dom0", vmClass: .adminVM, state: .running, uuid: "00000000-0000-0000-0000-000000000000"))
        #expect(try client.property("netvm", of: "work") == PropertyValue(type: "vm", isDefault: true, value: "fw-net"))
        #expect(try client.property("netvm", of: "sys-net") == PropertyValue(type: "vm", isDefault: false, value: ""))
        #expect(try client.property("memory", of: "core-net") == PropertyValue(type: "int", isDefault: false, value: "512"))
        #expect(try client.propertyDefault("label", of: "work") == nil)
        #expect(try client.propertyDefault("netvm", of: "work") == PropertyValue(type: "vm", isDefault: true, value: "fw-net"))
        #expect(try client.property("default_pool", of: nil) == PropertyValue(type: "str", isDefault: false, value: "varlibqubes"))
        #expect(try client.propertyNames(of: "work").suffix(3) == ["management_dispvm", "netvm", "template"])
        #expect(try client.labels() == ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"])
        #expect(try client.labelColor("red") == "0xcc0000")
        #expect(try client.pools() == ["varlibqubes", "linux-kernel", "liteqube-file"])
        #expect(try client.poolInfo("linux-kernel").map(\.key) == ["dir_path", "driver", "name"])
        #expect(try client.volumes(of: "work") == ["root", "private", "volatile", "kernel"])
        #expect(try client.volumeInfo("root", of: "work").first { $0.key == "source" }?.value == "vm-templates/fedora-40-xfce/root")
        #expect(try client.tags(of: "work") == (try offline.tags(of: "work")))
        #expect(try client.hasTag("created-by-dom0", on: "work"))
        #expect(try !client.hasTag("nonexist", on: "work"))
        #expect(try client.assignedDevices(of: "core-net", deviceClass: "pci") == (try offline.assignedDevices(of: "core-net", deviceClass: "pci")))
        #expect(try client.powerState(of: "work") == "Halted")
        let globals = try client.allProperties(of: nil)
        #expect(globals.map(\.name) == (try offline.allProperties(of: nil)).map(\.name))
        #expect(globals.first { $0.name == "no_cpus" }?.value == PropertyValue(type: "int", isDefault: true, value: "42"))
        #expect(try client.allProperties(of: "core-net").map(\.value) == (try offline.allProperties(of: "core-net")).map(\.value))
        #expect(throws: AdminError.self) { try client.allProperties(of: "work") }
        #expect(throws: AdminError.qubes(className: "QubesException", message: "VMM operations disabled in offline mode")) {
            try client.availableDevices(of: "dom0", deviceClass: "pci")
        }
        #expect(throws: AdminError.qubes(className: "QubesException", message: "VMM operations disabled in offline mode")) {
            try client.property("maxmem", of: "work")
        }
        #expect(throws: AdminError.qubes(className: "QubesVMNotFoundError", message: "No such domain: 'nonexist'")) {
            try client.powerState(of: "nonexist")
        }
        #expect(throws: AdminError.qubes(className: "QubesVMNotStartedError", message: "Domain is powered off: 'work'")) {
            try client.shutdown("work", force: false, wait: false)
        }
    }

    @Test func transportFailuresAreClearErrors() throws {
        let files = try temporaryStore()
        let offline = OfflineBackend(path: files.path)
        let cases: [(AdminSocketServer.Mode, (AdminError) -> Bool)] = [
            (.canned([]), { if case .emptyReply = $0 { return true } else { return false } }),
            (.canned(Array("2\u{0}QubesException\u{0}".utf8)), { if case .malformedReply = $0 { return true } else { return false } }),
            (.canned(Array("garbage".utf8)), { if case .malformedReply = $0 { return true } else { return false } }),
            (.canned(Array(repeating: 0x30, count: 300_000)), { if case .malformedReply = $0 { return true } else { return false } }),
            (.silent, { if case .timeout = $0 { return true } else { return false } }),
        ]
        for (index, (mode, matches)) in cases.enumerated() {
            let directory = files.directory + "/server-\(index)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let server = try AdminSocketServer(directory: directory, backend: offline, mode: mode)
            defer { server.stop() }
            let client = AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 0.5, maximumReplySize: 100_000))
            do {
                _ = try client.labels()
                Issue.record("case \(index): no error")
            } catch let error as AdminError {
                #expect(matches(error), "case \(index): \(error)")
            }
        }
        let missing = AdminAPIBackend(transport: AdminTransport(socketPath: files.directory + "/nothing.sock"))
        #expect(throws: AdminError.self) { try missing.qubes() }
    }

    @Test func eventsStreamThroughTheSocket() throws {
        let files = try temporaryStore()
        let server = try AdminSocketServer(directory: files.directory, backend: OfflineBackend(path: files.path), mode: .canned(WireTests.eventStream))
        defer { server.stop() }
        var events: [AdminEvent] = []
        try AdminTransport(socketPath: server.socketPath, timeout: 5).events { event in
            events.append(event)
            return true
        }
        #expect(events == WireTests.expectedEvents)
    }
}
