import Foundation
import Provisioning
import QubesAdmin
import QubesStore
import Testing

/// The manifest's customising keys (docs/liteqube.md, "Customising"): what plan shows, apply does, a second
/// apply leaves alone and destroy takes back.
@Suite struct CustomisingTests {
    static func manifest(_ settings: String) throws -> Manifest {
        try Manifest.parse("components: [base, network, usb]\n" + settings)
    }

    static func plan(_ system: TemplateTests.System, _ manifest: Manifest) throws -> Plan {
        try Planner(
            backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
            executor: system.executor, package: try system.root.package()
        ).plan(manifest)
    }

    static func packages(_ plan: Plan) -> [String] {
        plan.operations.flatMap { operation -> [String] in if case .installPackages(_, let packages) = operation { packages } else { [] } }
    }

    /// The default-install store with sys-net's two Intel devices replaced by these identities.
    static func store(netDevices identities: [String]) throws -> [UInt8] {
        var text = String(decoding: TemplateTests.provisionedStore, as: UTF8.self)
        for (old, new) in zip(["8086:a0f0::p028000", "8086:15fc::p020000"], identities) { text = text.replacingOccurrences(of: old, with: new) }
        return Array(text.utf8)
    }

    @Test func keysAreReadTypedAndDefaulted() throws {
        let defaults = try Self.manifest("")
        #expect(defaults.packages.isEmpty && defaults.firmware == nil && defaults.idleTime == 300 && defaults.sysNames.isEmpty)
        #expect(defaults.replaced(.net) == "sys-net" && defaults.replaced(.fwNet) == "sys-firewall")
        #expect(defaults.replaced(.tor) == "sys-whonix" && defaults.replaced(.usb) == "sys-usb" && defaults.replaced(.core) == nil)
        let manifest = try Self.manifest("""
            packages: [vim-tiny, less]
            firmware: []
            idle_time: 600
            sys_names:
              net: my-net
              usb: my-usb
            """)
        #expect(manifest.packages == ["vim-tiny", "less"])
        #expect(manifest.firmware == [] && manifest.effectiveFirmware.isEmpty)
        #expect(manifest.idleTime == 600)
        #expect(manifest.replaced(.net) == "my-net" && manifest.replaced(.usb) == "my-usb" && manifest.replaced(.tor) == "sys-whonix")
    }

    @Test(arguments: [
        ("packages: [vim, Vim]\n", 2, "packages: 'Vim' is not a Debian package name"),
        ("packages:\n  - vim\n  - \"x; reboot\"\n", 4, "'x; reboot' is not a Debian package name"),
        ("packages: vim\n", 2, "packages must be a list"),
        ("firmware: [firmware-realtek, -x]\n", 2, "'-x' is not a Debian package name"),
        ("idle_time: 5\n", 2, "idle_time must be a whole number from 30 to 86400"),
        ("idle_time: soon\n", 2, "idle_time must be a whole number"),
        ("sys_names:\n  core: sys-core\n", 3, "unknown sys_names entry 'core'"),
        ("sys_names:\n  net: 0net\n", 3, "not a valid qube name"),
        ("sys_names:\n  net: core-usb\n", 3, "'core-usb' is one of Liteqube's own qubes"),
    ])
    func badKeysNameTheLine(_ text: String, _ line: Int, _ message: String) {
        expectRefusal(of: text, line: line, message: message) { try Self.manifest($0) }
    }

    /// The firmware follows the makers of the network qube's PCI devices, found in the store.
    @Test(arguments: [
        (["8086:a0f0::p028000", "8086:15fc::p020000"], ["firmware-iwlwifi"]),
        (["14c3:7961::p028000", "10ec:8168::p020000"], ["firmware-mediatek", "firmware-realtek"]),
        (["168c:003e::p028000", "17cb:1103::p028000"], ["firmware-atheros"]),
        (["14e4:43a0::p028000", "8086:15fc::p020000"], ["firmware-brcm80211"]),
        (["1814:5592::p028000", "8086:15fc::p020000"], []),
    ])
    func firmwareDefaultsToTheNetworkDevicesMakers(_ identities: [String], _ expected: [String]) throws {
        let system = try TemplateTests.System(store: try Self.store(netDevices: identities))
        let plan = try Self.plan(system, try Self.manifest(""))
        let firmware = Self.packages(plan).filter { $0.hasPrefix("firmware-") }
        #expect(firmware == expected)
        #expect(plan.notes.contains { $0.contains("no firmware is installed") } == expected.isEmpty)
        // The manifest's list wins, and an empty one installs none.
        let chosen = try Self.plan(system, try Self.manifest("firmware: [firmware-libertas]\n"))
        #expect(Self.packages(chosen).filter { $0.hasPrefix("firmware-") } == ["firmware-libertas"])
        let none = try Self.plan(system, try Self.manifest("firmware: []\n"))
        #expect(!Self.packages(none).contains { $0.hasPrefix("firmware-") } && !none.notes.contains { $0.contains("firmware") })
    }

    /// Once the devices have moved, a second plan still finds them (in the network qube) and installs nothing more.
    @Test func extraPackagesAreInstalledKeptByTheSlimmingThenUndone() throws {
        let system = try TemplateTests.System(store: try Self.store(netDevices: ["10ec:c822::p028000", "8086:15fc::p020000"]))
        let original = try system.root.snapshot()
        let manifest = try Self.manifest("packages: [vim-tiny, stterm]\nidle_time: 120\n")
        let plan = try Self.plan(system, manifest)
        #expect(Self.packages(plan).filter { ["vim-tiny", "stterm", "firmware-realtek"].contains($0) } == ["stterm", "vim-tiny", "firmware-realtek"])
        #expect(Self.packages(plan).filter { $0 == "stterm" }.count == 1)
        try system.applier.apply(plan)
        let installed = try system.root.text("/var/lib/liteqube/packages").split(separator: "\n")
        #expect(installed.contains("vim-tiny") && installed.contains("firmware-realtek") && !installed.contains("firmware-iwlwifi"))
        #expect(try system.root.text("/usr/lib/liteqube/slim.policy").contains("vim-tiny"))
        let idle = try system.root.text("/etc/protect/template.core-update/usrlocal/bin/liteqube-idle-poweroff")
        #expect(idle.contains("-ge 120 ]") && !idle.contains("300"))
        // The devices are in core-net now: the same firmware, nothing to do.
        let again = try Self.plan(system, manifest)
        #expect(again.operations.isEmpty, "\(again.operations.map(\.summary))")
        try system.applier.destroy()
        #expect(try system.root.snapshot() == original)
    }

    /// `sys_names:` retires the qubes it names, and moves their devices; a name with no qube retires none.
    @Test func sysNamesChooseTheRetiredQubes() throws {
        let fresh = try Scratch()
        let text = String(decoding: try fresh.bytes(fresh.store), as: UTF8.self).replacingOccurrences(of: ">sys-net<", with: ">my-netvm<")
            .replacingOccurrences(of: "\"sys-net\"", with: "\"my-netvm\"")
        try Data(text.utf8).write(to: URL(fileURLWithPath: fresh.store))
        let original = try fresh.canonical()
        let backend = OfflineBackend(path: fresh.store, random: .seeded(7))
        let manifest = try Self.manifest("sys_names:\n  net: my-netvm\n  tor: no-such-qube\n")
        let plan = try fresh.planner(backend).plan(manifest)
        #expect(plan.notes.contains("sys_names.tor: there is no qube no-such-qube, so core-tor retires none"))
        #expect(plan.operations.contains(.setFeature(qube: "my-netvm", name: "prohibit-start", value: "replaced by core-net (Liteqube)")))
        #expect(!plan.operations.contains { $0.summary.contains("sys-whonix") })
        try Applier(backend: backend, journalPath: fresh.journal).apply(plan)
        let store = try Store.load(xml: [UInt8](try fresh.bytes(fresh.store))).store
        #expect(store["core-net"]?.devices["pci"]?.map(\.port) == ["00_14.3", "00_1f.6"])
        #expect(store["my-netvm"]?.devices["pci"]?.isEmpty ?? true)
        #expect(store["my-netvm"]?.properties["autostart"] == "False")
        #expect(try fresh.planner(backend).plan(manifest).operations.isEmpty)
        try Applier(backend: backend, journalPath: fresh.journal).destroy()
        #expect(try fresh.canonical() == original)
    }

    static func size(_ volume: String, of qube: String, in scratch: Scratch) throws -> String? {
        try Store.load(xml: [UInt8](try scratch.bytes(scratch.store))).store[qube]?.volumes.first { $0.name == volume }?.size
    }

    /// `root_size:` and `private_size:` grow the volumes of the qubes apply creates; destroy removes them whole.
    @Test func volumeSizesGrowTheCreatedQubesThenDestroyRemovesThem() throws {
        let scratch = try Scratch()
        let original = try scratch.canonical()
        let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        let manifest = try Self.manifest("root_size: {core: 20480}\nprivate_size: {core: 4096, keys: 3072}\n")
        let plan = try scratch.planner(backend).plan(manifest)
        let resizes = plan.operations.filter { if case .resizeVolume = $0 { true } else { false } }
        #expect(resizes.map(\.summary) == [
            "grow debian-core's root volume to 20480 MiB", "grow debian-core's private volume to 4096 MiB", "grow core-keys's private volume to 3072 MiB",
        ])
        // Each comes after its qube is made.
        let clone = try #require(plan.operations.firstIndex { if case .cloneTemplate = $0 { true } else { false } })
        #expect(try #require(plan.operations.firstIndex(of: resizes[0])) > clone)
        // Stopped at the second resize, a run again continues to the same store.
        let second = try #require(plan.operations.firstIndex(of: resizes[1]))
        #expect(throws: ProvisioningError.self) {
            try Applier(backend: backend, journalPath: scratch.journal).apply(plan) { event in
                if case .starting(let index, _, _) = event, index == second { throw ProvisioningError(.ioFailure, "interrupted") }
            }
        }
        try Applier(backend: backend, journalPath: scratch.journal).apply(try scratch.planner(backend).plan(manifest))
        #expect(try Self.size("root", of: "debian-core", in: scratch) == String(20480 << 20))
        #expect(try Self.size("private", of: "debian-core", in: scratch) == String(4096 << 20))
        #expect(try Self.size("private", of: "core-keys", in: scratch) == String(3072 << 20))
        #expect(try scratch.planner(backend).plan(manifest).operations.isEmpty)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try scratch.canonical() == original)
    }

    /// A qube that was there keeps its grown volume after destroy (Qubes cannot shrink one); a smaller size,
    /// a root size for a qube whose root is its template's and a private size for a disposable are refused.
    @Test func volumeSizesOfQubesThatWereThere() throws {
        let scratch = try Scratch()
        try Data(TemplateTests.provisionedStore).write(to: URL(fileURLWithPath: scratch.store))
        let backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        let manifest = try Self.manifest("private_size: {keys: 4096}\n")
        let plan = try scratch.planner(backend).plan(manifest)
        #expect(plan.operations.filter { $0.insideQube == nil && $0.summary.hasPrefix("grow") } == [.resizeVolume(qube: "core-keys", volume: "private", size: 4096 << 20)])
        try Applier(backend: backend, journalPath: scratch.journal).apply(plan)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try Self.size("private", of: "core-keys", in: scratch) == String(4096 << 20))
        for (settings, message) in [
            ("private_size: {keys: 1024}\n", "private_size.keys: the private volume is already 4096 MiB, and Qubes cannot shrink a volume"),
            ("root_size: {keys: 20480}\n", "root_size.keys: core-keys is a AppVM, whose root volume is its template's"),
            ("private_size: {net: 1024}\n", "private_size.net: core-net is a DispVM, whose private volume is its disposable template's"),
        ] {
            let error = try #require(throws: ProvisioningError.self) { try scratch.planner(backend).plan(try Self.manifest(settings)) }
            #expect(error.message == message && error.qube != nil, "\(error)")
        }
        // qubesd's answer offline too: a volume does not shrink.
        #expect(throws: (any Error).self) { try backend.resizeVolume("private", of: "core-keys", to: 1 << 30) }
    }

    @Test(arguments: [
        ("root_size: {core: 0}\n", 2, "root_size.core must be a whole number of MiB from 1 to 16777216"),
        ("private_size:\n  keys: big\n", 3, "private_size.keys must be a whole number of MiB"),
        ("private_size:\n  nosuch: 5\n", 3, "unknown private_size entry 'nosuch'"),
    ])
    func badSizesNameTheLine(_ text: String, _ line: Int, _ message: String) {
        #expect(throws: Manifest.Error.self) { try Self.manifest(text) }
        do {
            _ = try Self.manifest(text)
        } catch let error as Manifest.Error {
            #expect(error.location?.line == line && error.message.contains(message), "\(error)")
        } catch {
            Issue.record("\(error)")
        }
    }
}
