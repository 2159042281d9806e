import Glibc

// Calls on trusted paths in dom0 (qubes.xml, shard files, policy files, template folders), as opposed to
// `SystemCalls`, which works relative to open directories of an untrusted volume (docs/system-layer.md).
//
// qubesd locks qubes.xml itself with `fcntl.lockf` (a POSIX record lock), writes a temp file, renames it
// over qubes.xml, and refuses to save when the file's mtime changed since it loaded it. `lock` takes
// open-file-description (OFD) locks: on Linux OFD locks and POSIX record locks conflict with each other,
// so qubesd and `lq` exclude each other; and unlike POSIX locks, an OFD lock belongs to one `open()`, not
// to the whole process, so two threads of one process also exclude each other, and closing some other fd
// of the file does not drop the lock (docs/system-layer.md, "Locks").

// Linux fcntl commands for OFD locks; the Glibc module does not export them.
private let F_OFD_SETLK: Int32 = 37
private let F_OFD_SETLKW: Int32 = 38

/// The path-level calls of the atomic replace and of locked store files. `SystemFileSystem` is the real
/// one; tests wrap it to inject a failure at each step.
public protocol FileSystem: Sendable {
    /// Opens `path` (O_CLOEXEC is always added) and returns the fd.
    func open(_ path: String, flags: Int32, mode: UInt32) throws -> Int32
    /// Closes `fd`, ignoring errors.
    func close(_ fd: Int32)
    /// The stamp of an open file (`fstat`).
    func fstat(_ fd: Int32) throws -> FileStamp
    /// The stamp of the file at `path`, following symlinks (`stat`).
    func stat(_ path: String) throws -> FileStamp
    /// The whole file, read from offset 0.
    func read(_ fd: Int32) throws -> [UInt8]
    /// Writes all of `bytes`, looping over short writes and retrying EINTR.
    func write(_ fd: Int32, _ bytes: [UInt8]) throws
    /// `fsync(fd)`, retrying EINTR.
    func fsync(_ fd: Int32) throws
    /// `rename(from, to)`: replaces `to` atomically.
    func rename(_ from: String, _ to: String) throws
    /// `unlink(path)`.
    func unlink(_ path: String) throws
    /// Blocking OFD lock on the whole file (F_OFD_SETLKW, F_WRLCK or F_RDLCK), retrying EINTR.
    /// Released when the fd is closed.
    func lock(_ fd: Int32, exclusive: Bool) throws
    /// Permission bits and owner of the open file.
    func attributes(_ fd: Int32) throws -> FileAttributes
    /// Gives the open file these permission bits (fchmod, so the umask does not apply)
    /// and this owner and group (fchown, only when they differ).
    func setAttributes(_ fd: Int32, _ attributes: FileAttributes) throws
}

/// What identifies one version of a file: device, inode, size, mtime with nanoseconds.
public struct FileStamp: Sendable, Hashable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, mtimeSeconds: Int64, mtimeNanoseconds: Int64) {
        (self.device, self.inode, self.size) = (device, inode, size)
        (self.mtimeSeconds, self.mtimeNanoseconds) = (mtimeSeconds, mtimeNanoseconds)
    }

    /// The stamp of what `info` describes.
    public init(_ info: FileInfo) {
        self.init(
            device: info.device, inode: info.inode, size: info.size,
            mtimeSeconds: info.modificationSeconds, mtimeNanoseconds: info.modificationNanoseconds)
    }
}

/// Permission bits (`mode & 0o7777`), owner and group of a file, carried over when it is replaced.
public struct FileAttributes: Sendable, Hashable {
    public var permissions: UInt32
    public var owner: UInt32
    public var group: UInt32

    public init(permissions: UInt32, owner: UInt32, group: UInt32) {
        (self.permissions, self.owner, self.group) = (permissions, owner, group)
    }
}

extension FileAttributes {
    /// `permissions`, with the owner and group a new file gets (the process's, or the folder's group
    /// when it is set-group-ID): `fchown` is given -1 for both, which leaves them as they are.
    public static func newFile(permissions: UInt32) -> FileAttributes {
        FileAttributes(permissions: permissions, owner: .max, group: .max)
    }
}

/// The real calls: `HostSystem`'s loops on descriptors, O_CLOEXEC everywhere; every error is a
/// `SystemError` naming the path (for a descriptor, the path it was opened with).
public struct SystemFileSystem: FileSystem {
    let host = HostSystem()

    public init() {}

    public func open(_ path: String, flags: Int32, mode: UInt32) throws(SystemError) -> Int32 {
        do {
            return try retrying("open") { Glibc.open(path, flags | O_CLOEXEC, mode_t(mode)) }
        } catch {
            throw error.on(path)
        }
    }

    public func close(_ fd: Int32) { host.close(fd) }

    public func fstat(_ fd: Int32) throws -> FileStamp { FileStamp(try status(fd)) }

    public func stat(_ path: String) throws -> FileStamp {
        var st = Glibc.stat()
        guard statPath(path, &st) == 0 else { throw SystemError("stat", errno, path: path) }
        return FileStamp(FileInfo(st))
    }

    public func read(_ fd: Int32) throws(SystemError) -> [UInt8] {
        try naming(fd) { () throws(SystemError) in try host.read(fd, limit: Int.max - 1) }
    }

    public func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        try naming(fd) { () throws(SystemError) in try host.write(fd, bytes) }
    }

    public func fsync(_ fd: Int32) throws {
        try naming(fd) { () throws(SystemError) in try host.sync(fd) }
    }

    public func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename", errno, path: from, target: to) }
    }

    public func unlink(_ path: String) throws {
        guard Glibc.unlink(path) == 0 else { throw SystemError("unlink", errno, path: path) }
    }

    public func lock(_ fd: Int32, exclusive: Bool) throws {
        var request = Self.lockRequest(exclusive: exclusive)
        while fcntl(fd, F_OFD_SETLKW, &request) != 0 {
            let code = errno
            if code != EINTR { throw SystemError("lock", code, path: pathOf(fd)) }
        }
    }

    /// An OFD lock request on the whole file.
    private static func lockRequest(exclusive: Bool) -> Glibc.flock {
        var request = Glibc.flock()
        request.l_type = Int16(exclusive ? F_WRLCK : F_RDLCK)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = 0
        request.l_len = 0  // the whole file
        request.l_pid = 0  // required for OFD locks
        return request
    }

    /// `lock` without waiting: false when another open file description holds a conflicting lock.
    public func tryLock(_ fd: Int32, exclusive: Bool) throws -> Bool {
        var request = Self.lockRequest(exclusive: exclusive)
        while fcntl(fd, F_OFD_SETLK, &request) != 0 {
            let code = errno
            if code == EAGAIN || code == EACCES { return false }
            if code != EINTR { throw SystemError("lock", code, path: pathOf(fd)) }
        }
        return true
    }

    /// Holds the exclusive lock of the lock file at `path` (created 0600 when missing, never removed) and
    /// returns its descriptor; closing that releases the lock. When another holds it, `waiting` runs first,
    /// then the lock is waited for (docs/system-layer.md, "Locks").
    public func holdLock(_ path: String, waiting: () throws -> Void = {}) throws -> Int32 {
        let fd = try open(path, flags: O_RDWR | O_CREAT, mode: 0o600)
        do {
            if try !tryLock(fd, exclusive: true) {
                try waiting()
                try lock(fd, exclusive: true)
            }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    public func attributes(_ fd: Int32) throws -> FileAttributes {
        let info = try status(fd)
        return FileAttributes(permissions: info.permissions, owner: info.owner, group: info.group)
    }

    public func setAttributes(_ fd: Int32, _ attributes: FileAttributes) throws {
        let info = try status(fd)
        try naming(fd) { () throws(SystemError) in
            // chown first: it may clear set-id bits, which fchmod then sets again.
            if info.owner != attributes.owner || info.group != attributes.group {
                try host.setOwner(fd, owner: attributes.owner, group: attributes.group)
            }
            try host.setPermissions(fd, attributes.permissions)
        }
    }

    private func status(_ fd: Int32) throws(SystemError) -> FileInfo {
        try naming(fd) { () throws(SystemError) in try host.status(fd) }
    }

    /// Runs a call on `fd`, naming in its error the path `fd` was opened with.
    func naming<Result>(_ fd: Int32, _ body: () throws(SystemError) -> Result) throws(SystemError) -> Result {
        do {
            return try body()
        } catch {
            throw error.on(pathOf(fd))
        }
    }
}

/// stat(2); a free function because `Glibc.stat` names the struct, and `stat` inside the struct the method.
func statPath(_ path: String, _ st: inout Glibc.stat) -> Int32 {
    stat(path, &st)
}

/// The path an fd was opened with (from /proc/self/fd), for error messages.
private func pathOf(_ fd: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
    guard n > 0 else { return "fd \(fd)" }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
