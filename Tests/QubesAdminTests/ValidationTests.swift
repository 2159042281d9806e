import Foundation
import QubesAdmin
import QubesStore
import Testing

/// Every check of the offline backend: the bad call is refused with
/// qubesd's exception class, and the file is left unchanged.
@Suite struct ValidationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        /// The qubesd exception class, or `nil` for an empty reply.
        var className: String?
        var call: @Sendable (Backend) throws -> Void
        var testDescription: String { name }
    }

    static let nic = DeviceAssignment(backendDomain: "dom0", port: "00_14.3", identity: "8086:a0f0::p028000", mode: .required)

    static let cases: [Case] = [
        Case(name: "name starting with a digit", className: "QubesValueError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "0bad", label: "red", template: "debian-core"))
        },
        Case(name: "name too long", className: "QubesValueError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: String(repeating: "a", count: 32), label: "red", template: "debian-core"))
        },
        Case(name: "name ending in -dm", className: "QubesValueError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "work-dm", label: "red", template: "debian-core"))
        },
        Case(name: "existing name", className: "QubesVMAlreadyExistsError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "work", label: "red", template: "debian-core"))
        },
        Case(name: "unknown label", className: "ProtocolError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "lq-x", label: "nolabel", template: "debian-core"))
        },
        Case(name: "unknown template", className: "QubesVMNotFoundError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "lq-x", label: "red", template: "nonexist"))
        },
        Case(name: "AppVM template not a TemplateVM", className: "QubesPropertyValueError") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "lq-x", label: "red", template: "work"))
        },
        Case(name: "disposable template without template_for_dispvms", className: "QubesValueError") {
            try $0.create(Store.NewQube(vmClass: .dispVM, name: "lq-x", label: "red", template: "work"))
        },
        Case(name: "template given to a TemplateVM", className: "ProtocolError") {
            try $0.create(Store.NewQube(vmClass: .templateVM, name: "lq-x", label: "red", template: "debian-core"))
        },
        Case(name: "unknown pool", className: "QubesException") {
            try $0.create(Store.NewQube(vmClass: .appVM, name: "lq-x", label: "red", template: "debian-core", pool: "nopool"))
        },
        Case(name: "AdminVM", className: "QubesPropertyValueError") {
            try $0.create(Store.NewQube(vmClass: .adminVM, name: "lq-x", label: "red"))
        },
        Case(name: "remove dom0", className: "QubesVMInUseError") { try $0.remove("dom0") },
        Case(name: "remove a template in use", className: "QubesVMInUseError") { try $0.remove("debian-core") },
        Case(name: "remove a netvm in use", className: "QubesVMInUseError") { try $0.remove("fw-net") },
        Case(name: "remove unknown", className: "QubesVMNotFoundError") { try $0.remove("nonexist") },
        Case(name: "write-once qid", className: nil) { try $0.setProperty("qid", of: "work", to: "5") },
        Case(name: "read-only property", className: "QubesPropertyValueError") { try $0.setProperty("dns", of: "work", to: "x") },
        Case(name: "global read-only maxmem", className: "QubesPropertyValueError") { try $0.setProperty("maxmem", of: nil, to: "1") },
        Case(name: "unknown property", className: "QubesNoSuchPropertyError") { try $0.setProperty("nonexist", of: "work", to: "1") },
        Case(name: "netvm missing", className: "QubesPropertyValueError") { try $0.setProperty("netvm", of: "work", to: "nonexist") },
        Case(name: "netvm invalid name", className: "QubesValueError") { try $0.setProperty("netvm", of: "work", to: "-x") },
        Case(name: "netvm not providing network", className: "QubesValueError") { try $0.setProperty("netvm", of: "work", to: "vault") },
        Case(name: "netvm loop", className: "QubesPropertyValueError") { try $0.setProperty("netvm", of: "core-net", to: "fw-net") },
        Case(name: "netvm itself", className: "QubesValueError") { try $0.setProperty("netvm", of: "fw-net", to: "fw-net") },
        Case(name: "template of wrong class", className: "QubesPropertyValueError") { try $0.setProperty("template", of: "work", to: "vault") },
        Case(name: "default_dispvm not a disposable template", className: "QubesPropertyValueError") {
            try $0.setProperty("default_dispvm", of: "work", to: "vault")
        },
        Case(name: "global default_template not a TemplateVM", className: "QubesPropertyValueError") {
            try $0.setProperty("default_template", of: nil, to: "work")
        },
        Case(name: "global default_pool unknown", className: "QubesPropertyValueError") { try $0.setProperty("default_pool", of: nil, to: "x") },
        Case(name: "memory zero", className: "QubesPropertyValueError") { try $0.setProperty("memory", of: "work", to: "0") },
        Case(name: "memory not a number", className: "QubesValueError") { try $0.setProperty("memory", of: "work", to: "abc") },
        Case(name: "bool not a literal", className: "QubesValueError") { try $0.setProperty("autostart", of: "work", to: "maybe") },
        Case(name: "virt_mode unknown", className: "QubesPropertyValueError") { try $0.setProperty("virt_mode", of: "work", to: "xen") },
        Case(name: "pvh with PCI devices", className: "QubesPropertyValueError") { try $0.setProperty("virt_mode", of: "core-net", to: "pvh") },
        Case(name: "provides_network off while used", className: "QubesPropertyValueError") {
            try $0.setProperty("provides_network", of: "fw-net", to: "False")
        },
        Case(name: "label unknown", className: "QubesLabelNotFoundError") { try $0.setProperty("label", of: "work", to: "pink") },
        Case(name: "string with control characters", className: "QubesValueError") {
            try $0.setProperty("kernelopts", of: "work", to: "a\u{1}b")
        },
        Case(name: "feature name illegal", className: "ProtocolError") { try $0.setFeature("bad name", to: "1", of: "work") },
        Case(name: "feature value with tab", className: "ProtocolError") { try $0.setFeature("x", to: "a\tb", of: "work") },
        Case(name: "protected feature", className: "PermissionDenied") { try $0.setFeature("preload-dispvm", to: "1", of: "core-dvm") },
        Case(name: "remove absent feature", className: "QubesFeatureNotFoundError") { try $0.removeFeature("nonexist", of: "work") },
        Case(name: "invalid tag", className: "QubesInvalidTagError") { try $0.addTag("bad tag", to: "work") },
        Case(name: "remove absent tag", className: "QubesTagNotFoundError") { try $0.removeTag("nonexist", from: "work") },
        Case(name: "device assigned twice", className: "DeviceAlreadyAssigned") {
            try $0.assign(Self.nic, deviceClass: "pci", to: "core-net")
        },
        Case(name: "device not assigned", className: "DeviceNotAssigned") { try $0.unassign(Self.nic, deviceClass: "pci", from: "work") },
        Case(name: "device manual mode", className: nil) {
            var manual = Self.nic
            manual.mode = .manual
            try $0.assign(manual, deviceClass: "pci", to: "work")
        },
        Case(name: "volume unknown", className: "PermissionDenied") { try $0.setVolumeReadWrite("nonexist", of: "work", to: false) },
        Case(name: "start a prohibited qube", className: "QubesException") {
            try $0.setFeature("prohibit-start", to: "replaced", of: "work")
            try $0.start("work")
        },
    ]

    @Test(arguments: cases)
    func refusedAndFileUnchanged(_ testCase: Case) throws {
        let files = try temporaryStore()
        let before = try Data(contentsOf: URL(fileURLWithPath: files.path))
        let backend = OfflineBackend(path: files.path, random: .seeded(1))
        do {
            try backend.batch { try testCase.call(backend) }
            Issue.record("\(testCase.name): accepted")
        } catch let error as AdminError {
            if let className = testCase.className {
                #expect(error.className == className, "\(testCase.name): \(error)")
                if case .qubes(_, let message) = error { #expect(!message.isEmpty) }
            } else {
                guard case .emptyReply = error else { return #expect(Bool(false), "\(testCase.name): \(error)") }
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: files.path)) == before, "\(testCase.name): file changed")
    }

    @Test func messagesExplainTheRefusal() throws {
        let files = try temporaryStore()
        let backend = OfflineBackend(path: files.path)
        #expect(throws: AdminError.qubes(className: "QubesValueError", message: "The vault qube does not provide network")) {
            try backend.setProperty("netvm", of: "work", to: "vault")
        }
        #expect(throws: AdminError.qubes(className: "QubesVMInUseError", message: "Domain is in use: 'debian-core';  see 'journalctl -u qubesd -e' in dom0 for details")) {
            try backend.remove("debian-core")
        }
        #expect(throws: AdminError.qubes(className: "QubesTagNotFoundError", message: "Tag not set for domain work: liteqube")) {
            try backend.removeTag("liteqube", from: "work")
        }
    }
}

@Suite struct ConcurrencyTests {
    @Test func twoWritersNeverLoseAnUpdate() throws {
        let files = try temporaryStore()
        let group = DispatchGroup()
        let failures = LockedCounter()
        for writer in 0..<2 {
            group.enter()
            Thread {
                defer { group.leave() }
                let backend = OfflineBackend(path: files.path)
                for index in 0..<25 {
                    do { try backend.setFeature("writer\(writer)-\(index)", to: "1", of: "work") } catch { failures.increment() }
                }
            }.start()
        }
        group.wait()
        #expect(failures.value == 0)
        let features = try OfflineBackend(path: files.path).features(of: "work")
        #expect(features.filter { $0.hasPrefix("writer") }.count == 50)
    }

    @Test func aStaleCopyIsRefused() throws {
        let files = try temporaryStore()
        var first = try StoreDocument.open(StoreFile(path: files.path))
        var second = try StoreDocument.open(StoreFile(path: files.path))
        try first.store.setFeature("first", to: "1", of: "work")
        try first.save()
        try second.store.setFeature("second", to: "1", of: "work")
        #expect(throws: StoreError.self) { try second.save() }
        do { try second.save() } catch let error as StoreError { #expect(error.kind == .qubesException) }
        let saved = try StoreDocument.open(StoreFile(path: files.path)).store
        #expect(saved["work"]?.features["first"] == "1")
        #expect(saved["work"]?.features["second"] == nil)
    }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
