import Glibc
import SystemLayer

/// The `file` pool driver's `create-snapshot` helper with read-only volumes
/// (docs/shards.md, "create-snapshot"): the same arguments and device-mapper
/// setup as Qubes' own, and a read-only loop device for a read-only image.
///
/// `create-snapshot NAME IMAGE COW` (a volume kept on stop) makes the
/// snapshot `snapshot-<dev>:<ino>-<dev>:<ino>` of IMAGE with COW and the
/// origin NAME over IMAGE; `create-snapshot NAME IMAGE COW COW2` (a volume
/// snapshotted on start) makes the same snapshot, then NAME as a snapshot of
/// it with COW2. A file is attached to a loop device (`losetup`), a block
/// device is used as it is; what exists already in `/dev/mapper` is kept.
public struct CreateSnapshot: Sendable {
    /// The snapshot chunk size in 512-byte sectors, the one qubesd's file driver expects.
    public static let chunkSize = 256
    /// The folders `losetup`, `blockdev` and `dmsetup` are looked up in, in order.
    public var searchPath: [String]
    /// Where device-mapper devices appear.
    public var mapperFolder: String
    let files = SystemFileSystem()

    public init(searchPath: [String], mapperFolder: String = "/dev/mapper") {
        (self.searchPath, self.mapperFolder) = (searchPath, mapperFolder)
    }

    /// Sets the devices up for `arguments` (3 or 4 of them).
    /// - Throws: `ShardIssue` naming the path or the program that failed.
    public func run(_ arguments: [String]) throws {
        guard arguments.count == 3 || arguments.count == 4 else {
            throw ShardIssue("wrong number of arguments (expected 3 or 4): \(arguments.count)", field: "arguments")
        }
        let (final, base, cow) = (arguments[0], arguments[1], arguments[2])
        let snapshot = "snapshot-" + (try identity(base)) + "-" + (try identity(cow))
        let readOnly = try isReadOnly(base)
        let baseDevice = try device(base, readOnly: readOnly)
        let cowDevice = try device(cow, readOnly: false)
        try createSnapshot(snapshot, origin: baseDevice, cow: cowDevice)
        if arguments.count == 4 {
            try createSnapshot(final, origin: mapperFolder + "/" + snapshot, cow: try device(arguments[3], readOnly: false))
        } else if try files.info(of: mapperFolder + "/" + final, followSymlink: true)?.type != .blockDevice {
            let size = try sectors(of: baseDevice)
            try withOpen([baseDevice]) { descriptors in
                let table = "0 \(size) snapshot-origin /dev/fd/3"
                try dmsetup(["create", final] + (readOnly ? ["--readonly"] : []) + ["--table", table], descriptors, failure: "could not create origin")
            }
        }
    }

    /// Whether the image at `path` is read-only: no write bit for anyone, or on a read-only file system.
    public func isReadOnly(_ path: String) throws -> Bool {
        guard let info = try files.info(of: path, followSymlink: true), info.type == .regular else { return false }
        if info.permissions & 0o222 == 0 { return true }
        return try files.isOnReadOnlyFileSystem(path)
    }

    /// `<device in hex>:<inode>` of the entry at `path`, not following a symlink (`stat --printf=%D:%i`).
    func identity(_ path: String) throws -> String {
        guard let info = try files.info(of: path) else { throw ShardIssue("does not exist", file: path) }
        return String(info.device, radix: 16) + ":" + String(info.inode)
    }

    /// The block device for `path`: a file attached to a new loop device (read-only when asked), a block device itself.
    func device(_ path: String, readOnly: Bool) throws -> String {
        var path = path
        if try files.info(of: path)?.type == .symlink {
            do { path = try files.resolved(path) } catch { throw ShardIssue("the link does not lead to anything", file: path) }
        }
        switch try files.info(of: path, followSymlink: true)?.type {
        case .regular?:
            let options = ["--find", "--nooverlap"] + (readOnly ? ["--readonly"] : []) + ["--show", "--", path]
            let result = try program("losetup", options, [:])
            let loop = String(decoding: result.output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            guard result.status == 0, loop.wholeMatch(of: /\/dev\/loop[0-9]+/) != nil else {
                throw ShardIssue("failed to find an unused loop device", file: path)
            }
            return loop
        case .blockDevice?: return path
        case nil: throw ShardIssue("does not exist", file: path)
        default: throw ShardIssue("is not a block device nor file", file: path)
        }
    }

    /// `name` as a persistent snapshot of `origin` with `cow`, unless it exists already.
    func createSnapshot(_ name: String, origin: String, cow: String) throws {
        guard try files.info(of: mapperFolder + "/" + name, followSymlink: true) == nil else { return }
        let size = try sectors(of: origin)
        try withOpen([origin, cow]) { descriptors in
            let table = "0 \(size) snapshot /dev/fd/3 /dev/fd/4 P \(Self.chunkSize)"
            try dmsetup(["create", name, "--table", table], descriptors, failure: "could not create snapshot")
        }
    }

    /// The size of the block device at `path` in 512-byte sectors (`blockdev --getsz`).
    func sectors(of path: String) throws -> Int {
        let result = try program("blockdev", ["--getsz", path], [:])
        let text = String(decoding: result.output, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        guard result.status == 0, let size = Int(text), size >= 0 else { throw ShardIssue("blockdev --getsz failed", file: path, value: text) }
        return size
    }

    func dmsetup(_ arguments: [String], _ descriptors: [Int32: Int32], failure: String) throws {
        guard try program("dmsetup", arguments, descriptors).status == 0 else { throw ShardIssue(failure, field: "dmsetup", value: arguments[1]) }
    }

    /// Runs `body` with `paths` open for reading as descriptors 3, 4, … of the child.
    func withOpen(_ paths: [String], _ body: ([Int32: Int32]) throws -> Void) throws {
        var opened: [Int32: Int32] = [:]
        defer { for fd in opened.values { files.close(fd) } }
        for (index, path) in paths.enumerated() { opened[Int32(3 + index)] = try files.open(path, flags: O_RDONLY, mode: 0) }
        try body(opened)
    }

    /// Runs the program `name` found in `searchPath`.
    func program(_ name: String, _ arguments: [String], _ descriptors: [Int32: Int32]) throws -> ProcessOutput {
        guard let path = searchPath.map({ $0 + "/" + name }).first(where: { (try? files.info(of: $0, followSymlink: true))??.type == .regular })
        else { throw ShardIssue("not found in \(searchPath.joined(separator: ":"))", field: "program", value: name) }
        return try HostSystem().run(path, arguments, input: [], outputLimit: 1 << 16, passing: descriptors)
    }
}
