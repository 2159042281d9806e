import BootProtect
import Foundation
import Glibc
import LQCommon
import SplitServices
import SystemLayer
import Testing

@Suite(.timeLimit(.minutes(1))) struct SplitFileTests {
    let folder: Folder
    let recorder = Recorder()
    var server: SplitFileServer

    init() throws {
        folder = try Folder()
        try folder.file("store/core-vpn/server.zip", "zip bytes")
        try folder.file("store/core-net/wifi-home", "psk")
        try folder.file("outside/secret", "outside")
        let recorder = recorder
        server = SplitFileServer(
            store: folder.path + "/store", maxSize: 100, context: ServiceContext(notifier: recorder, keepAlive: { recorder.keepAlive() }))
    }

    func refusal(_ caller: String?, _ argument: [UInt8]) -> SplitError? {
        do {
            let served = try server.serve(caller: caller, argument: argument)
            Issue.record("served \(served.count) bytes")
            return nil
        } catch {
            return error
        }
    }

    @Test func servesTheCallersOwnFileAndNotifiesOnce() throws {
        #expect(try server.serve(caller: "core-vpn", argument: Array("server.zip".utf8)) == Array("zip bytes".utf8))
        #expect(recorder.messages == ["core-vpn requested file server.zip"])
        #expect(recorder.keepAlives == 1)
    }

    @Test(arguments: [
        "../core-net/wifi-home", "..", ".", "/etc/passwd", "%2Fetc%2Fpasswd", "core-net%2Fwifi-home", "a/b", "a\0b",
        String(repeating: "a", count: 65), "", "-rf", ".hidden", "two words", "..%2F..%2Fetc",
    ])
    func traversalAndBadNamesAreRefusedBeforeAnyLookup(_ name: String) {
        let error = refusal("core-vpn", Array(name.utf8))
        #expect(error?.code == .argument)
        #expect(recorder.messages.isEmpty, "no notification for a refused name")
        #expect(recorder.keepAlives == 1)
    }

    @Test func refusalMessagesNameTheRule() {
        #expect(refusal("core-vpn", Array("a%2Fb".utf8))?.message == "refused: file name 'a%2Fb' has the byte %; allowed: A-Z a-z 0-9 _ . + -")
        #expect(refusal("core-vpn", Array("a\0b".utf8))?.message == "refused: file name 'a\\x00b' has the byte \\x00; allowed: A-Z a-z 0-9 _ . + -")
        #expect(refusal("core-vpn", Array(repeating: 0x61, count: 300))?.message == "refused: file name longer than 64 bytes (300)")
        #expect(refusal("core-vpn", Array("..".utf8))?.message == "refused: file name '..' starts with '.' or '-'")
    }

    @Test func anotherCallersFileIsNotFound() {
        let error = refusal("core-vpn", Array("wifi-home".utf8))
        #expect(error?.code == .notFound)
        #expect(error?.message == "\(folder.path)/store/core-vpn/wifi-home: no such file or folder")
    }

    @Test func callerMustBeAQubeName() {
        #expect(refusal(nil, Array("server.zip".utf8))?.code == .caller)
        #expect(refusal("", Array("server.zip".utf8))?.code == .caller)
        #expect(refusal("../core-net", Array("wifi-home".utf8))?.code == .caller)
        #expect(refusal("core-vpn/..", Array("server.zip".utf8))?.code == .caller)
    }

    @Test func symlinksInsideTheStoreAreRefused() throws {
        try folder.symlink("store/core-vpn/link", to: folder.path + "/outside/secret")
        try folder.symlink("store/core-vpn/sibling", to: "../core-net/wifi-home")
        try folder.symlink("store/core-iscsi", to: folder.path + "/outside")
        for (caller, name) in [("core-vpn", "link"), ("core-vpn", "sibling"), ("core-iscsi", "secret")] {
            let error = refusal(caller, Array(name.utf8))
            #expect(error?.code == .unsafe)
            #expect(error?.message.hasSuffix("a symlink or not a folder on the way; refused") == true)
        }
    }

    @Test func hardLinksFifosAndMissingFilesAreRefused() throws {
        #expect(link(folder.path + "/outside/secret", folder.path + "/store/core-vpn/hard") == 0)
        #expect(mkfifo(folder.path + "/store/core-vpn/pipe", 0o600) == 0)
        #expect(refusal("core-vpn", Array("hard".utf8))?.message == "\(folder.path)/store/core-vpn/hard: has 2 hard links; refused")
        #expect(refusal("core-vpn", Array("pipe".utf8))?.message == "\(folder.path)/store/core-vpn/pipe: a fifo, not a file; refused")
        #expect(refusal("core-vpn", Array("absent".utf8))?.code == .notFound)
    }

    @Test func oversizedFilesAreRefused() throws {
        try folder.file("store/core-vpn/big", [UInt8](repeating: 0x41, count: 101))
        try folder.file("store/core-vpn/exact", [UInt8](repeating: 0x41, count: 100))
        #expect(refusal("core-vpn", Array("big".utf8))?.message == "\(folder.path)/store/core-vpn/big: 101 bytes, over the limit of 100; refused")
        #expect(try server.serve(caller: "core-vpn", argument: Array("exact".utf8)).count == 100)
    }

    @Test func clientCallsQrexecAndReportsRefusals() throws {
        try folder.file("qrexec-client-vm", "#!/bin/sh\nif [ \"$2\" = liteqube.SplitFile+bad ]; then exit 3; fi\nprintf 'to %s: %s' \"$1\" \"$2\"\n", mode: 0o755)
        let client = QrexecClient(client: folder.path + "/qrexec-client-vm")
        #expect(try client.call("core-keys", "liteqube.SplitFile", argument: "server.zip", limit: 100) == Array("to core-keys: liteqube.SplitFile+server.zip".utf8))
        #expect(throws: SplitError(.remote, "core-keys refused liteqube.SplitFile+bad (exit 3)")) {
            try client.call("core-keys", "liteqube.SplitFile", argument: "bad", limit: 100)
        }
        #expect(throws: SplitError(.tooLarge, "core-keys: liteqube.SplitFile+server.zip sent more than 5 bytes")) {
            try client.call("core-keys", "liteqube.SplitFile", argument: "server.zip", limit: 5)
        }
    }
}

/// dom0 stores a file for a qube in core-keys and pins it in the template (`lq addkey file`).
@Suite(.timeLimit(.minutes(1))) struct FileSaverTests {
    let folder: Folder
    var store: String { folder.path + "/rw/home/user" }
    var rules: String { folder.path + "/rules" }

    init() throws {
        folder = try Folder()
        try FileManager.default.createDirectory(atPath: folder.path + "/rw/home/user", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder.path + "/rules/template.ALL", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder.path + "/outside", withIntermediateDirectories: true)
    }

    @Test func aSavedFileIsServedPinnedAndKeptByTheBootGuard() throws {
        let content: [UInt8] = Array("client\nremote vpn.example 1194\n".utf8) + [0, 255]
        let pin = try FileSaver(store: store, owner: 0, group: 0).save(Array("core-vpn\nserver.ovpn\n".utf8) + content)
        #expect(pin == ChecksumPin(of: content))
        let path = try PinWriter(rules: rules, owner: 0, group: 0).writeFile(Array("core-vpn\nserver.ovpn\n".utf8) + pin.fileBytes)
        #expect(path == "\(rules)/checksum.core-keys/home/user/core-vpn/server.ovpn")
        #expect(folder.mode("rw/home/user/core-vpn") == 0o700 && folder.mode("rw/home/user/core-vpn/server.ovpn") == 0o600)
        #expect(folder.mode("rules/checksum.core-keys/home/user/core-vpn") == 0o700)
        #expect(try SplitFileServer(store: store).serve(caller: "core-vpn", argument: Array("server.ovpn".utf8)) == content)
        #expect(chmod(store, 0o700) == 0)
        let boot = BootProtect.run(volume: .folder(folder.path + "/rw"), rules: rules, options: ProtectOptions(qube: "core-keys"))
        #expect(boot.errors.isEmpty && boot.quarantined.isEmpty, "\(boot.errors) \(boot.quarantined)")
        #expect(folder.content("rw/home/user/core-vpn/server.ovpn") != nil)
    }

    @Test(arguments: ["core-vpn\n../x\ndata", "../x\nname\ndata", "core-vpn\nname", "core-vpn\n.hidden\ndata", "core-vpn\nbig\n" + String(repeating: "a", count: 17)])
    func badInputIsRefusedAndNothingIsWritten(_ input: String) throws {
        #expect(throws: SplitError.self) { try FileSaver(store: store, owner: 0, group: 0, maxSize: 16).save(Array(input.utf8)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: store).isEmpty)
    }

    @Test func aSymlinkedQubeFolderIsRefused() throws {
        try folder.symlink("rw/home/user/core-vpn", to: folder.path + "/outside")
        #expect(throws: SplitError.self) { try FileSaver(store: store, owner: 0, group: 0).save(Array("core-vpn\nserver.ovpn\ndata".utf8)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path + "/outside").isEmpty)
        #expect(throws: SplitError.self) {
            try PinWriter(rules: rules, owner: 0, group: 0).writeFile(Array("core-vpn\n../x\n".utf8) + ChecksumPin(of: []).fileBytes)
        }
    }
}
