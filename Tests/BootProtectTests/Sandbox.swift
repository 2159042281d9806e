import BootProtect
import Foundation
import Glibc
import LQCommon
import SystemLayer
import Testing

/// A temp folder with `rules/` (standing in for /etc/protect), `rw/` (the private volume) and
/// `outside/` (files a symlink in /rw must never reach).
final class Sandbox {
    let folder: String
    var rules: String { folder + "/rules" }
    var rw: String { folder + "/rw" }
    var outside: String { folder + "/outside" }
    let qube = "core-keys"

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-protect-\(UUID().uuidString)").path
        for path in [rules, rw, outside] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    }

    deinit {
        // The guard makes files immutable: clear the flags, then remove.
        let chattr = Process()
        chattr.executableURL = URL(fileURLWithPath: "/usr/bin/chattr")
        chattr.arguments = ["-R", "-f", "-i", folder]
        chattr.standardError = FileHandle.nullDevice
        try? chattr.run()
        chattr.waitUntilExit()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Writes a file (parents created 0755), with a mode and owner.
    func file(_ path: String, _ content: String = "", mode: UInt32 = 0o644, owner: UInt32 = 0, group: UInt32 = 0) throws {
        try bytes(path, Array(content.utf8), mode: mode, owner: owner, group: group)
    }

    func bytes(_ path: String, _ content: [UInt8], mode: UInt32 = 0o644, owner: UInt32 = 0, group: UInt32 = 0) throws {
        let full = folder + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: full, contents: Data(content)))
        #expect(chown(full, owner, group) == 0)
        #expect(chmod(full, mode_t(mode)) == 0)
    }

    func directory(_ path: String, mode: UInt32 = 0o755, owner: UInt32 = 0, group: UInt32 = 0) throws {
        let full = folder + "/" + path
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        #expect(chown(full, owner, group) == 0)
        #expect(chmod(full, mode_t(mode)) == 0)
    }

    func symlink(_ path: String, to target: String) throws {
        let full = folder + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        #expect(Glibc.symlink(target, full) == 0)
    }

    func fifo(_ path: String) {
        #expect(mkfifo(folder + "/" + path, 0o644) == 0)
    }

    func settings(_ text: String) throws { try file("rules/settings.\(qube)", text) }

    /// `lstat` of a path below the sandbox, nil if absent.
    func info(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return lstat(folder + "/" + path, &st) == 0 ? st : nil
    }

    func exists(_ path: String) -> Bool { info(path) != nil }
    func isSymlink(_ path: String) -> Bool { info(path).map { $0.st_mode & S_IFMT == S_IFLNK } ?? false }
    func isDirectory(_ path: String) -> Bool { info(path).map { $0.st_mode & S_IFMT == S_IFDIR } ?? false }
    func mode(_ path: String) -> UInt32? { info(path).map { UInt32($0.st_mode) & 0o7777 } }
    func owner(_ path: String) -> UInt32? { info(path).map { $0.st_uid } }
    func content(_ path: String) -> String? {
        FileManager.default.contents(atPath: folder + "/" + path).map { String(decoding: $0, as: UTF8.self) }
    }

    func isImmutable(_ path: String) -> Bool {
        let system = HostSystem()
        guard let fd = try? system.openFile(currentDirectory, Array((folder + "/" + path).utf8)) else { return false }
        defer { system.close(fd) }
        return (try? system.flags(fd).contains(.immutable)) ?? false
    }

    /// Names directly in a folder of the sandbox, sorted.
    func list(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder + "/" + path)) ?? []).sorted()
    }

    @discardableResult
    func run(dryRun: Bool = false, firstBoot: Bool = false, system: any SystemCalls = HostSystem(), notifier: (any Notifier)? = nil) -> ProtectReport {
        BootProtect.run(
            volume: .folder(rw), rules: rules, options: ProtectOptions(qube: qube, dryRun: dryRun, firstBoot: firstBoot),
            system: system, notifier: notifier)
    }
}

extension ProtectReport {
    /// The paths of a report list, as text.
    static func paths(_ entries: [ReportEntry]) -> [String] { entries.map(\.path.description) }
    var deployedPaths: [String] { Self.paths(deployed) }
    var fixedPaths: [String] { Self.paths(fixed) }
    var quarantinedPaths: [String] { Self.paths(quarantined) }
    var deletedPaths: [String] { Self.paths(deleted) }
}

/// A notifier that keeps what it was told.
final class RecordingNotifier: Notifier, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [String] = []
    var messages: [String] { lock.withLock { stored } }
    func notify(qube: String, message: String) { lock.withLock { stored.append("\(qube): \(message)") } }
}
