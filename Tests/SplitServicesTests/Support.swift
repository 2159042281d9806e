import Foundation
import Glibc
import LQCommon
import SystemLayer
import Testing

/// A temp folder for a store (`store/<caller>/…`), pins and files outside the store.
final class Folder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("lq-split-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        let chattr = Process()
        chattr.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        chattr.arguments = ["-R", "-f", "-i", path]
        try? chattr.run()
        chattr.waitUntilExit()
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ relative: String, _ content: [UInt8], mode: UInt32 = 0o600) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: full, contents: Data(content)))
        #expect(chmod(full, mode_t(mode)) == 0)
    }

    func file(_ relative: String, _ text: String, mode: UInt32 = 0o600) throws { try file(relative, Array(text.utf8), mode: mode) }

    func symlink(_ relative: String, to target: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(Glibc.symlink(target, full) == 0)
    }

    func mode(_ relative: String) -> UInt32? {
        var st = Glibc.stat()
        return lstat(path + "/" + relative, &st) == 0 ? UInt32(st.st_mode) & 0o7777 : nil
    }

    func content(_ relative: String) -> String? {
        FileManager.default.contents(atPath: path + "/" + relative).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Records notifications and keep-alive calls.
final class Recorder: Notifier, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    private var pings = 0
    var messages: [String] { lock.withLock { stored } }
    var keepAlives: Int { lock.withLock { pings } }
    func notify(qube: String, message: String) { lock.withLock { stored.append(message) } }
    func keepAlive() { lock.withLock { pings += 1 } }
}
