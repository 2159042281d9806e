import AdminServer
import Foundation
import Provisioning
import QubesAdmin
import QrexecPolicy
import QubesStore
import Testing

/// A scratch system: a copy of the default-install qubes.xml and a policy folder.
struct Scratch {
    let directory: String
    var store: String { directory + "/qubes.xml" }
    var policy: String { directory + "/policy.d" }
    var rpc: String { directory + "/qubes-rpc" }
    var journal: String { directory + "/liteqube.journal.json" }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lq-prov-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/policy.d", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/qubes-rpc", withIntermediateDirectories: true)
        let fixture = Bundle.module.resourceURL!.appendingPathComponent("Fixtures/qubes-default.xml")
        try FileManager.default.copyItem(atPath: fixture.path, toPath: store)
        try "# the user's own rules\n".write(toFile: policy + "/30-user.policy", atomically: true, encoding: .utf8)
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func planner(_ backend: Backend) -> Planner {
        Planner(backend: backend, policyDirectory: policy, readFile: Dom0Files.system.read, kernels: [], rpcDirectory: rpc)
    }

    /// The files of the policy and qrexec service folders.
    func policyFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: policy).sorted() + FileManager.default.contentsOfDirectory(atPath: rpc).sorted()
    }

    /// dom0's evaluator of the policy folder on the store's system, after expecting the folder to load
    /// without errors and to lint clean.
    func policyEvaluator() throws -> PolicyEvaluator {
        let system = try SystemInfo(store: try Store.load(xml: [UInt8](try bytes(store))).store)
        let load = PolicyLoader(directories: [policy], legacyDirectory: "/nonexistent").load()
        #expect(load.errors.isEmpty)
        #expect(PolicyLint.findings(load, system: system).isEmpty, "\(PolicyLint.findings(load, system: system))")
        return PolicyEvaluator(policy: load.policy, system: system)
    }

    /// Applies `manifest` offline (uuids from a seeded generator); with `stopAt`, fails before that operation.
    @discardableResult
    func apply(_ manifest: Manifest, backend: OfflineBackend? = nil, stopAt: Int? = nil) throws -> OfflineBackend {
        let backend = backend ?? OfflineBackend(path: store, random: .seeded(7))
        try Applier(backend: backend, journalPath: journal).apply(try planner(backend).plan(manifest)) { event in
            if case .starting(let index, _, _) = event, index == stopAt { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
        }
        return backend
    }

    /// The store in canonical form (what `lq store fmt` writes).
    func canonical() throws -> [UInt8] { try XMLWriter.write(try Store.load(xml: [UInt8](try bytes(store))).store) }
}

/// Expects `evaluator` to decide each call (`service[+argument]`, source, target) as the decision named.
func expectDecisions(_ evaluator: PolicyEvaluator, _ expectations: [(String, String, String, String)], _ context: String = "") {
    for (service, source, target, expected) in expectations {
        let decision = evaluator.evaluate(Call(serviceAndArgument: service, source: source, target: target))
        #expect(decision.name == expected, "\(context)\(service) \(source) → \(target): \(decision.summary)")
    }
}

@Suite struct ApplyTests {
    static let manifest = Manifest(components: [.base, .network, .usb])

    func apply(_ scratch: Scratch, _ backend: Backend, stopAt: Int? = nil) throws {
        let plan = try scratch.planner(backend).plan(Self.manifest)
        try Applier(backend: backend, journalPath: scratch.journal).apply(plan) { event in
            if case .starting(let index, _, _) = event, index == stopAt { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
        }
    }

    @Test func offlineApplyBuildsTheMasterTable() throws {
        let scratch = try Scratch()
        let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        try apply(scratch, backend)
        let store = try Store.load(xml: [UInt8](try scratch.bytes(scratch.store))).store
        let expected: [(String, VMClass, String?, String, Int, Int, String?, String, Bool, Bool, Bool)] = [
            // name, class, template, label, memory, vcpus, virt_mode, netvm, provides_network, template_for_dispvms, autostart
            ("debian-core", .templateVM, nil, "black", 1024, 1, nil, "", false, false, false),
            ("core-dvm", .appVM, "debian-core", "gray", 512, 1, nil, "", false, true, false),
            ("core-xorg", .dispVM, "core-dvm", "gray", 512, 1, nil, "", false, false, false),
            ("core-keys", .appVM, "debian-core", "gray", 160, 1, nil, "", false, false, false),
            ("fw-net", .dispVM, "core-dvm", "gray", 128, 1, nil, "core-net", true, false, false),
            ("fw-tor", .dispVM, "core-dvm", "gray", 128, 1, nil, "core-tor", true, false, false),
            ("core-net", .dispVM, "core-dvm", "gray", 240, 1, "hvm", "", true, false, true),
            ("core-tor", .appVM, "debian-core", "gray", 176, 1, "pvh", "fw-net", true, false, false),
            ("core-update", .dispVM, "core-dvm", "gray", 4096, 2, "pvh", "fw-tor", false, false, false),
            ("core-usb", .dispVM, "core-dvm", "gray", 208, 1, "hvm", "", false, false, true),
        ]
        for (name, vmClass, template, label, memory, vcpus, virtMode, netvm, providesNetwork, forDispvms, autostart) in expected {
            let qube = try #require(store[name], "\(name) missing")
            #expect(qube.vmClass == vmClass, "\(name)")
            #expect(qube.properties["template"] == template, "\(name)")
            #expect(qube.properties["label"] == label, "\(name)")
            #expect(qube.properties["memory"] == String(memory), "\(name)")
            #expect(qube.properties["maxmem"] == "0", "\(name)")
            #expect(qube.properties["vcpus"] == String(vcpus), "\(name)")
            #expect(qube.properties["virt_mode"] == virtMode, "\(name)")
            #expect(qube.properties["netvm"] == netvm, "\(name)")
            #expect(qube.properties["audiovm"] == "", "\(name)")
            #expect((qube.properties["provides_network"] == "True") == providesNetwork, "\(name)")
            #expect((qube.properties["template_for_dispvms"] == "True") == forDispvms, "\(name)")
            #expect((qube.properties["autostart"] == "True") == autostart, "\(name)")
        }
        #expect(store["core-net"]?.devices["pci"]?.map(\.port) == ["00_14.3", "00_1f.6"])
        #expect(store["core-net"]?.devices["pci"]?.allSatisfy { $0.options.contains { $0.name == "no-strict-reset" && $0.value == "True" } } == true)
        #expect(store["sys-net"]?.devices["pci"]?.isEmpty ?? true)
        // Only core-xorg runs the GUI agent; the others are not sent the monitor layout.
        let headless = Set(expected.map(\.0).filter { store[$0]?.features["no-monitor-layout"] == "1" })
        #expect(headless == ["core-keys", "fw-net", "fw-tor", "core-net", "core-tor", "core-update", "core-usb"])
        #expect(store["core-usb"]?.devices["pci"]?.count == 2)
        #expect(store["sys-net"]?.properties["autostart"] == "False")
        #expect(store["sys-net"]?.features["prohibit-start"] == "replaced by core-net (Liteqube)")
        #expect(store["sys-usb"]?.features["prohibit-start"] == "replaced by core-usb (Liteqube)")
        #expect(store.globalProperties["default_netvm"] == "fw-net")
        #expect(store.globalProperties["updatevm"] == "core-update")
        #expect(store.globalProperties["clockvm"] == "core-tor")
        #expect(store["debian-core"]?.features["os"] == store["debian-12-minimal"]?.features["os"])
        let report = StoreCheck.check([UInt8](try scratch.bytes(scratch.store)))
        #expect(report.errors.isEmpty && report.warnings.isEmpty, "\(report.warnings)")
        let policy = try String(contentsOfFile: scratch.policy + "/45-liteqube.policy", encoding: .utf8)
        #expect(policy.contains("liteqube.SplitFile * core-net core-keys allow"))
        let services = [
            "liteqube.Error", "liteqube.Message", "liteqube.SignalStorage", "liteqube.SignalTime", "liteqube.SignalTor", "liteqube.SignalWifi",
        ]
        #expect(try scratch.policyFiles() == ["30-user.policy", "45-liteqube.policy"] + services)
        for service in services {
            let path = scratch.rpc + "/" + service
            #expect(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int == 0o755)
            let syntax = Process()
            syntax.executableURL = URL(fileURLWithPath: "/bin/sh")
            syntax.arguments = ["-n", path]
            try syntax.run()
            syntax.waitUntilExit()
            #expect(syntax.terminationStatus == 0, "\(service) is not valid sh")
        }
        // What the desktop shows: the caller and the argument as text, given to notify-send as data.
        #expect(try notification(scratch, "liteqube.Message", from: "core-keys", "core-net_requested_file_secret_key")
            == ["--urgency=normal", "--expire-time=2000", "--icon=dialog-information", "--", "core-keys", "core-net requested file secret key"])
        #expect(try notification(scratch, "liteqube.SignalStorage", from: "core-usb", "A_sdb1_vfat_14G")?.suffix(2) == ["core-usb", "USB storage sdb1: vfat, 14G"])
        #expect(try notification(scratch, "liteqube.SignalStorage", from: "core-usb", "R_sdb1")?.last == "USB storage sdb1 removed")
        #expect(try notification(scratch, "liteqube.SignalStorage", from: "core-usb", "$(reboot)") == nil)
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "AP-Home_WiFi")?.last == "Network: Home WiFi")
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "ST-0")?.last == "Disconnected")
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "SI-70") == [])
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "SI-100") == [])
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "SI-29")?.last == "Weak Wi-Fi signal: 29%")
        #expect(try notification(scratch, "liteqube.SignalWifi", from: "core-net", "SI-101") == nil)
        #expect(try notification(scratch, "liteqube.SignalTor", from: "core-tor", "100")?.last == "Tor connected")
        #expect(try notification(scratch, "liteqube.SignalTor", from: "core-tor", "45") == [])
        #expect(try notification(scratch, "liteqube.SignalTor", from: "core-tor", "1;reboot") == nil)
        // The clock's corrections: positive means the clock was behind.
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "10800")?.last == "Clock was 3 h behind, corrected")
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "-42")?.last == "Clock was 42 s ahead, corrected")
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "-600")?.last == "Clock was 10 min ahead, corrected")
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "31536000")?.last == "Clock was 365 days behind, corrected")
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "000") == [])
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "-") == nil)
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "1;reboot") == nil)
        #expect(try notification(scratch, "liteqube.SignalTime", from: "core-tor", "9999999999999") == nil)
        // Idempotence, and the budget now is the planned one (the retired qubes no longer start at boot).
        let plan = try scratch.planner(backend).plan(Self.manifest)
        #expect(plan.operations.isEmpty)
        let now = try MemoryBudget(backend: backend, manifest: Self.manifest)
        #expect(now.totals[.alwaysOn] == MemoryBudget(desired: plan.desired).totals[.alwaysOn])
    }

    /// Runs a dom0 service as qrexec would, with `notify-send` standing in: its arguments, `[]` when it
    /// showed nothing, or `nil` when the service refused (non-zero exit, nothing shown).
    func notification(_ scratch: Scratch, _ service: String, from caller: String, _ argument: String) throws -> [String]? {
        let bin = scratch.directory + "/desktop-bin"
        let shown = scratch.directory + "/shown"
        try? FileManager.default.removeItem(atPath: shown)
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for (name, body) in [("stat", "id -un"), ("notify-send", "printf '%s\\n' \"$@\" > \(shown)")] {
            try "#!/bin/sh\n\(body)\n".write(toFile: bin + "/" + name, atomically: false, encoding: .utf8)
            chmod(bin + "/" + name, 0o755)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: scratch.rpc + "/" + service)
        process.arguments = [argument]
        process.environment = ["PATH": bin + ":/usr/bin:/bin", "QREXEC_REMOTE_DOMAIN": caller, "QREXEC_SERVICE_ARGUMENT": argument]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            #expect(!FileManager.default.fileExists(atPath: shown))
            return nil
        }
        guard FileManager.default.fileExists(atPath: shown) else { return [] }
        return try String(contentsOfFile: shown, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// The generated policy loads and lints clean, and dom0 decides each
    /// Liteqube call as the spec intends (§4.2).
    @Test func generatedPolicyDecidesAsIntended() throws {
        let scratch = try Scratch()
        try apply(scratch, OfflineBackend(path: scratch.store, random: .seeded(7)))
        let evaluator = try scratch.policyEvaluator()
        let expectations: [(String, String, String, String)] = [
            ("liteqube.SplitFile", "core-net", "core-keys", "allow"),
            ("liteqube.SplitFile", "core-tor", "core-keys", "deny"),
            ("liteqube.SplitFile", "work", "core-keys", "deny"),
            ("liteqube.Message", "core-usb", "dom0", "allow"),
            ("liteqube.Error", "fw-net", "dom0", "allow"),
            ("liteqube.Message", "work", "dom0", "deny"),
            ("liteqube.SplitXorg", "core-keys", "core-xorg", "ask"),
            ("liteqube.SplitXorg", "work", "core-xorg", "deny"),
            ("liteqube.SignalWifi", "core-net", "dom0", "allow"),
            ("liteqube.SignalTor", "core-tor", "dom0", "allow"),
            ("liteqube.TorSetAP", "core-net", "core-tor", "allow"),
            ("liteqube.TorSetAP", "core-usb", "core-tor", "deny"),
            ("liteqube.WifiRequestAP", "core-tor", "core-net", "allow"),
            ("liteqube.SignalStorage", "core-usb", "dom0", "allow"),
            ("qubes.InputKeyboard", "core-usb", "dom0", "allow"),
            ("qubes.InputMouse", "work", "dom0", "deny"),
            ("qubes.UpdatesProxy", "debian-core", "@default", "allow"),
            ("qubes.UpdatesProxy", "work", "@default", "deny"),
        ]
        expectDecisions(evaluator, expectations)
        let proxy = evaluator.evaluate(Call(service: "qubes.UpdatesProxy", source: "debian-core", target: "@default"))
        guard case .allow(let target, _, _, _) = proxy.outcome else { return #expect(Bool(false), "\(proxy.summary)") }
        #expect(target == "core-update")
    }

    @Test func destroyRestoresTheOriginal() throws {
        let scratch = try Scratch()
        let original = try scratch.canonical()
        let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        try apply(scratch, backend)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try scratch.canonical() == original)
        #expect(try scratch.policyFiles() == ["30-user.policy"])
        #expect(!FileManager.default.fileExists(atPath: scratch.journal))
    }

    static let planLength = try! Scratch().planner(OfflineBackend(path: try! Scratch().store)).plan(manifest).operations.count

    static let finalState: [UInt8] = {
        let reference = try! Scratch()
        try! ApplyTests().apply(reference, OfflineBackend(path: reference.store, random: .seeded(7)))
        return try! reference.canonical()
    }()

    /// Stopped before step k: re-running apply reaches the uninterrupted
    /// result, and destroy (on a second system stopped there) the original.
    @Test(arguments: 0..<planLength)
    func interruptedAtStep(_ step: Int) throws {
        let scratch = try Scratch()
        // One backend for both runs, so the uuids continue the same sequence.
        let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        #expect(throws: ProvisioningError.self) { try apply(scratch, backend, stopAt: step) }
        try apply(scratch, backend)
        #expect(try scratch.canonical() == Self.finalState, "resume after step \(step)")

        let partial = try Scratch()
        let original = try partial.canonical()
        #expect(throws: ProvisioningError.self) { try apply(partial, OfflineBackend(path: partial.store, random: .seeded(7)), stopAt: step) }
        try Applier(backend: OfflineBackend(path: partial.store), journalPath: partial.journal).destroy()
        #expect(try partial.canonical() == original, "destroy after step \(step)")
        #expect(try partial.policyFiles() == ["30-user.policy"])
    }

    /// Each component's manifest: applied through the Admin API socket and offline, the same qubes.xml.
    @Test(arguments: ["network, usb", "vpn", "split-ssh"])
    func socketAndOfflineEndInTheSameStore(_ components: String) throws {
        let manifest = ["network, usb": Self.manifest, "vpn": VPNTests.manifest(), "split-ssh": SplitSSHComponentTests.manifest()][components]!
        let offline = try Scratch()
        try offline.apply(manifest, backend: OfflineBackend(path: offline.store, random: .seeded(9)))
        let viaSocket = try Scratch()
        let server = try AdminSocketServer(directory: viaSocket.directory, backend: OfflineBackend(path: viaSocket.store, random: .seeded(9)))
        defer { server.stop() }
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 10))
        try Applier(backend: backend, journalPath: viaSocket.journal).apply(try viaSocket.planner(backend).plan(manifest))
        #expect(try viaSocket.bytes(viaSocket.store) == (try offline.bytes(offline.store)))
    }

    /// On a live system a running sys-net keeps its devices attached whatever its stored assignment says,
    /// and qubesd refuses to move running qubes to a netvm that is not running (sys-firewall has its own
    /// netvm and is not in the way), so apply changes nothing until they are shut down; the plan says why.
    @Test func devicesAreNotMovedFromARunningQube() throws {
        let scratch = try Scratch()
        let original = try scratch.bytes(scratch.store)
        let server = try AdminSocketServer(
            directory: scratch.directory, backend: OfflineBackend(path: scratch.store, random: .seeded(9)), mode: .live(running: ["sys-net", "sys-firewall", "personal"]))
        defer { server.stop() }
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: server.socketPath, timeout: 10))
        let plan = try scratch.planner(backend).plan(Self.manifest)
        #expect(plan.blockers.count == 2)
        #expect(plan.blockers.last == "personal is running on the default network, which becomes fw-net (not running yet): shut it down, then apply")
        #expect(plan.blockers.first?.hasPrefix("sys-net is Running and holds the PCI devices 00_14.3, 00_1f.6 that move to core-net") == true, "\(plan.blockers)")
        #expect(throws: ProvisioningError.self) { try apply(scratch, backend) }
        #expect(try scratch.bytes(scratch.store) == original)
        #expect(try scratch.policyFiles() == ["30-user.policy"])
        #expect(!FileManager.default.fileExists(atPath: scratch.journal), "nothing journaled")
    }

    @Test func memoryBudgetOfBothProfiles() throws {
        for (profile, expected) in [(Manifest.Profile.default, 1040), (.lowMemory, 832)] {
            var manifest = Self.manifest
            manifest.profile = profile
            let desired = try DesiredState(
                manifest, templates: ["debian-12-minimal"], qubes: ["sys-net", "sys-usb"], kernels: ["mirage-firewall"])
            #expect(MemoryBudget(desired: desired).serviceTotal(manifest) == expected, "\(profile)")
        }
        #expect(MemoryBudget.qubesDefaultTotal == 1888)
        var mirage = Self.manifest
        mirage.profile = .lowMemory
        #expect(throws: ProvisioningError.self) {
            try DesiredState(mirage, templates: ["debian-12-minimal"], qubes: [], kernels: [])
        }
        #expect(throws: ProvisioningError.self) { try DesiredState(Self.manifest, templates: ["fedora-41"], qubes: [], kernels: nil) }
    }
}
