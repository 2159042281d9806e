import Glibc
import QubesStore
import SystemLayer

/// Stops and starts qubesd. Running qubes keep running across a restart:
/// qubesd reconnects to them when it starts.
public protocol QubesdControl: Sendable {
    /// Stops qubesd and returns when it has exited.
    func stop() throws
    /// Starts qubesd reading `store`, or its own default qubes.xml when `nil`.
    func start(store: String?) throws
    /// Has qubesd read `store` (nil: its own qubes.xml) when it next starts, without starting it.
    func prepare(store: String?) throws
}

/// qubesd as a systemd service: `systemctl stop|start qubesd.service`; the
/// store it reads is set by a runtime drop-in (`QUBES_XML_PATH`, which qubesd
/// reads at start), removed when it is to read its own file again.
public struct SystemdQubesd: QubesdControl {
    public var systemctl: String
    public var unit: String
    /// The drop-in folder of the unit, on tmpfs so that it goes with a reboot.
    public var dropInFolder: String
    public static let dropInName = "50-lq-shards.conf"

    public init(
        systemctl: String = "/usr/bin/systemctl", unit: String = "qubesd.service",
        dropInFolder: String = "/run/systemd/system/qubesd.service.d"
    ) {
        (self.systemctl, self.unit, self.dropInFolder) = (systemctl, unit, dropInFolder)
    }

    public func stop() throws { try run(["stop", unit]) }

    public func start(store: String?) throws {
        try prepare(store: store)
        try run(["start", unit])
    }

    public func prepare(store: String?) throws {
        let dropIn = dropInFolder + "/" + Self.dropInName
        let files = SystemFileSystem()
        if let store {
            guard store.hasPrefix("/"), store.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && !"\"\\%$'".unicodeScalars.contains($0) })
            else { throw ShardIssue("the merged store path cannot be given to systemd", field: "merged", value: store) }
            try files.makeDirectories(dropInFolder)
            let text = "# Written by lq shard attach: qubesd reads the merged store while shards are attached.\n[Service]\nEnvironment=QUBES_XML_PATH=\(store)\n"
            _ = try files.replaceFile(dropIn, with: Array(text.utf8), attributes: FileAttributes(permissions: 0o644, owner: geteuid(), group: getegid()))
        } else if try files.info(of: dropIn) != nil {
            try files.unlink(dropIn)
        }
        try run(["daemon-reload"])
    }

    private func run(_ arguments: [String]) throws {
        let result = try HostSystem().run(systemctl, arguments, input: [], outputLimit: 1 << 16)
        guard result.status == 0 else {
            throw ShardIssue("\(systemctl) \(arguments.joined(separator: " ")) failed with status \(result.status)", field: "systemctl")
        }
    }
}

/// The files one attach or detach may change, as they were before it, so a
/// failure puts every one back (docs/shards.md, "Attach and detach").
struct FileSnapshot {
    /// Path → bytes and permission bits, or nil when the file did not exist.
    private(set) var files: [(path: String, saved: (bytes: [UInt8], permissions: UInt32)?)] = []

    /// Records `paths` (each once) as they are now.
    mutating func record(_ paths: [String]) throws {
        let system = SystemFileSystem()
        for path in paths where !files.contains(where: { $0.path == path }) {
            if let info = try system.info(of: path) {
                files.append((path, (try StoreFile(path: path).read().bytes, info.permissions)))
            } else {
                files.append((path, nil))
            }
        }
    }

    /// Puts back every file that differs from its recorded version, each
    /// atomically under its lock; returns the errors (it goes on after one).
    func restore() -> [String] {
        var errors: [String] = []
        let system = SystemFileSystem()
        for (path, saved) in files {
            do {
                let exists = try system.info(of: path) != nil
                if let saved {
                    if exists, try StoreFile(path: path).read().bytes == saved.bytes { continue }
                    try StoreFile(path: path, newFileMode: saved.permissions).replace(with: saved.bytes, expecting: nil)
                } else if exists {
                    try system.unlink(path)
                }
            } catch {
                errors.append("\(path): \(error)")
            }
        }
        return errors
    }
}

/// The runtime files of the dance: the record, the merged store, the policy file and the lock.
struct RuntimeFiles {
    let paths: LifecyclePaths
    private let system = SystemFileSystem()

    /// The record, or nil when nothing is attached.
    func record() throws -> ShardRecord? {
        guard try system.info(of: paths.record) != nil else { return nil }
        return try ShardRecord.parse(StoreFile(path: paths.record).read().bytes, file: paths.record)
    }

    /// Writes the record (mode 0600), or removes it for nil.
    func write(_ record: ShardRecord?) throws {
        guard let record else { return try remove(paths.record) }
        try system.makeDirectories(paths.runtimeFolder)
        try StoreFile(path: paths.record, newFileMode: 0o600).replace(with: try record.bytes(), expecting: nil)
    }

    /// Writes the merged store (mode 0600 when new).
    func writeMerged(_ bytes: [UInt8], to path: String) throws {
        try system.makeDirectories(String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]))
        try StoreFile(path: path, newFileMode: 0o600).replace(with: bytes, expecting: nil)
    }

    /// Removes the file at `path` if there is one.
    func remove(_ path: String) throws {
        if try system.info(of: path) != nil { try system.unlink(path) }
    }

    /// Creates the policy folder and writes `bytes` as the policy file (0644 when new).
    func writePolicy(_ bytes: [UInt8]) throws {
        try system.makeDirectories(paths.policyFolder)
        try StoreFile(path: paths.policyFile, newFileMode: 0o644).replace(with: bytes, expecting: nil)
    }

    /// Runs `body` holding the exclusive lock of `<runtime folder>/lock`: one attach or detach at a time.
    func locked<Result>(_ body: () throws -> Result) throws -> Result {
        try system.makeDirectories(paths.runtimeFolder)
        let fd = try system.holdLock(paths.runtimeFolder + "/lock")
        defer { system.close(fd) }
        return try body()
    }
}
