import BootProtect
import Foundation
import Glibc
import LQCommon
import SplitServices
import SystemLayer
import Testing

@Suite struct PasswordStoreTests {
    static func parse(_ text: String) throws(SplitError) -> PasswordStore {
        try PasswordStore.parse(Array(text.utf8), name: "password-core-vpn")
    }

    @Test func roundTripNewestFirst() throws {
        var store = PasswordStore()
        store.set("vpn", Array("one".utf8))
        store.set("rdp", Array("it's \"quoted\" \\ $(x)\n".utf8))
        store.set("vpn", Array("two".utf8))
        let text = String(decoding: store.bytes, as: UTF8.self)
        #expect(text == "lq-splitpassword 1\nvpn\tdHdv\nrdp\taXQncyAicXVvdGVkIiBcICQoeCkK\n")
        let parsed = try Self.parse(text)
        #expect(parsed == store)
        #expect(parsed.password(for: "rdp") == Array("it's \"quoted\" \\ $(x)\n".utf8))
        #expect(parsed.password(for: "vpn") == Array("two".utf8) && parsed.password(for: "other") == nil)
    }

    @Test(arguments: [
        ("", "password-core-vpn: does not end with a newline"),
        ("vpn\tdHdv\n", "password-core-vpn line 1: not the header 'lq-splitpassword 1'"),
        ("lq-splitpassword 1\r\nvpn\tdHdv\n", "password-core-vpn line 1: not the header 'lq-splitpassword 1'"),
        ("lq-splitpassword 1\n\n", "password-core-vpn line 2: not TOKEN<tab>BASE64"),
        ("lq-splitpassword 1\nvpn\tdHdv\tx\n", "password-core-vpn line 2: not TOKEN<tab>BASE64"),
        ("lq-splitpassword 1\nvpn dHdv\n", "password-core-vpn line 2: not TOKEN<tab>BASE64"),
        ("lq-splitpassword 1\nvpn\tdHdv\r\n", "password-core-vpn line 2: the password of vpn is not canonical, non-empty base64"),
        ("lq-splitpassword 1\nvpn\tdHc\n", "password-core-vpn line 2: the password of vpn is not canonical, non-empty base64"),
        ("lq-splitpassword 1\nvpn\tdHd=\n", "password-core-vpn line 2: the password of vpn is not canonical, non-empty base64"),
        ("lq-splitpassword 1\nvpn\t\n", "password-core-vpn line 2: the password of vpn is not canonical, non-empty base64"),
        ("lq-splitpassword 1\nv*n\tdHdv\n", "password-core-vpn line 2: refused: token 'v*n' has the byte *; allowed: A-Z a-z 0-9 _ . + -"),
        ("lq-splitpassword 1\nvpn\tdHdv\nvpn\tdHdv\n", "password-core-vpn line 3: token vpn given twice"),
        ("lq-splitpassword 1\nvpn\tdHdv", "password-core-vpn: does not end with a newline"),
    ])
    func strictFormat(_ text: String, _ message: String) {
        #expect(throws: SplitError(.format, message)) { try Self.parse(text) }
    }

    @Test func errorsNeverQuoteThePassword() {
        do {
            _ = try Self.parse("lq-splitpassword 1\nvpn\tc2VjcmV0!\n")
        } catch {
            #expect(!error.message.contains("c2VjcmV0") && !error.message.contains("secret"))
        }
    }
}

@Suite struct SplitPasswordTests {
    let folder: Folder
    let recorder = Recorder()
    var store: String { folder.path + "/rw/home/user" }
    var rules: String { folder.path + "/rules" }
    var pins: String { rules + "/checksum.core-keys/home/user" }

    init() throws {
        folder = try Folder()
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
    }

    var server: SplitPasswordServer {
        let recorder = recorder
        return SplitPasswordServer(store: store, pins: pins, owner: 0, context: ServiceContext(notifier: recorder, keepAlive: { recorder.keepAlive() }))
    }

    /// Saves in core-keys, then pins in the template, as dom0 does.
    @discardableResult
    func save(_ qube: String, _ token: String, _ password: String) throws -> String {
        let pin = try PasswordSaver(store: store, owner: 0, group: 0).save(Array("\(qube)\n\(token)\n\(password)\n".utf8))
        return try PinWriter(rules: rules, owner: 0, group: 0).write(Array("\(qube)\n".utf8) + pin.fileBytes)
    }

    func refusal(_ caller: String, _ token: String) -> SplitError? {
        do {
            let served = try server.serve(caller: caller, argument: Array(token.utf8))
            Issue.record("served \(served.count) bytes")
            return nil
        } catch {
            return error
        }
    }

    @Test func saveThenServeThroughThePin() throws {
        let pinPath = try save("core-vpn", "vpn", "correct horse")
        try save("core-vpn", "rdp", "it's")
        #expect(pinPath == "\(rules)/checksum.core-keys/home/user/password-core-vpn")
        #expect(try server.serve(caller: "core-vpn", argument: Array("vpn".utf8)) == Array("correct horse".utf8))
        #expect(try server.serve(caller: "core-vpn", argument: Array("rdp".utf8)) == Array("it's".utf8))
        #expect(recorder.messages == ["core-vpn requested password vpn", "core-vpn requested password rdp"])
        #expect(folder.mode("rw/home/user/password-core-vpn") == 0o600)
        #expect(folder.mode("rules/checksum.core-keys") == 0o700 && folder.mode("rules/checksum.core-keys/home") == 0o755)
        #expect(folder.mode("rules/checksum.core-keys/home/user") == 0o700 && folder.mode("rules/checksum.core-keys/home/user/password-core-vpn") == 0o600)
        let pinText = try #require(folder.content("rules/checksum.core-keys/home/user/password-core-vpn"))
        #expect(pinText.split(separator: "\n").map(\.count) == [64, 128])
    }

    @Test func refusalsNameTheRule() throws {
        try save("core-vpn", "vpn", "pw")
        #expect(refusal("core-vpn", "other")?.message == "\(store)/password-core-vpn: no password for token other")
        #expect(refusal("core-rdp", "vpn")?.code == .notFound)
        #expect(refusal("core-vpn", "../x")?.code == .argument)
        #expect(chmod(store + "/password-core-vpn", 0o640) == 0)
        #expect(refusal("core-vpn", "vpn")?.message == "\(store)/password-core-vpn: mode 0640 lets group or others in; want 0600; refused")
        #expect(chmod(store + "/password-core-vpn", 0o600) == 0)
        let otherOwner = SplitPasswordServer(store: store, pins: pins, owner: 1000)
        #expect(throws: SplitError(.unsafe, "\(store)/password-core-vpn: owned by uid 0, not 1000; refused")) {
            try otherOwner.serve(caller: "core-vpn", argument: Array("vpn".utf8))
        }
    }

    @Test func pinIsRequiredAndVerified() throws {
        try save("core-vpn", "vpn", "pw")
        var store = try PasswordStore.parse(Array(try #require(folder.content("rw/home/user/password-core-vpn")).utf8), name: "x")
        store.set("vpn", Array("attacker".utf8))
        try folder.file("rw/home/user/password-core-vpn", store.bytes)
        #expect(refusal("core-vpn", "vpn")?.message == "\(self.store)/password-core-vpn: does not match its checksum pin \(pins)/password-core-vpn; refused")
        #expect(unlink(pins + "/password-core-vpn") == 0)
        #expect(refusal("core-vpn", "vpn")?.code == .pin)
    }

    @Test func symlinkedStoreIsRefused() throws {
        try save("core-vpn", "vpn", "pw")
        try folder.file("outside/password-core-rdp", "lq-splitpassword 1\nvpn\tcHc=\n")
        try folder.symlink("rw/home/user/password-core-rdp", to: folder.path + "/outside/password-core-rdp")
        #expect(refusal("core-rdp", "vpn")?.code == .unsafe)
    }

    @Test func saveRefusesBadInput() {
        let saver = PasswordSaver(store: store, owner: 0, group: 0)
        #expect(throws: SplitError.self) { try saver.save(Array("core-vpn\nvpn\n".utf8)) }
        #expect(throws: SplitError(.caller, "refused: caller '../x' is not a qube name")) { try saver.save(Array("../x\nvpn\npw\n".utf8)) }
        #expect(throws: SplitError.self) { try saver.save(Array("core-vpn\nv/n\npw\n".utf8)) }
        #expect(throws: SplitError.self) { try saver.save(Array("core-vpn\nvpn\n\n".utf8)) }
        let writer = PinWriter(rules: rules, owner: 0, group: 0)
        #expect(throws: SplitError(.format, "refused: line 1 is not 64 hex digits (sha256)")) {
            try writer.write(Array("core-vpn\nnot-hex\n\(String(repeating: "0", count: 128))\n".utf8))
        }
    }

    /// The pin written for the template makes BootProtect keep the store at boot, and quarantine it once tampered.
    @Test func bootProtectVerifiesTheStoreAgainstItsPin() throws {
        try save("core-vpn", "vpn", "pw")
        try FileManager.default.createDirectory(atPath: rules + "/template.ALL", withIntermediateDirectories: true)
        let rw = folder.path + "/rw"
        #expect(chmod(rw + "/home/user", 0o700) == 0)
        let kept = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(kept.errors.isEmpty && kept.quarantined.isEmpty)
        #expect(kept.fixed.map(\.description) == ["home/user/password-core-vpn (checksum.core-keys): made immutable"])
        #expect(Glibc.system("chattr -i '\(rw)/home/user/password-core-vpn'") == 0)
        try folder.file("rw/home/user/password-core-vpn", "lq-splitpassword 1\nvpn\tcXc=\n")
        let tampered = BootProtect.run(volume: .folder(rw), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(tampered.quarantined.map(\.description) == ["home/user/password-core-vpn (checksum.core-keys): checksum mismatch; moved to QUARANTINE/password-core-vpn"])
    }
}

@Suite struct ChecksumPinTests {
    @Test func knownVectors() {
        let pin = ChecksumPin(of: Array("abc".utf8))
        let text = String(decoding: pin.fileBytes, as: UTF8.self)
        #expect(text == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n")
        #expect(pin.matches(Array("abc".utf8)) && !pin.matches(Array("abd".utf8)))
    }
}
