import Glibc

// Safe persistence of qubes.xml, compatible with a running qubesd.
//
// qubesd locks qubes.xml itself with `fcntl.lockf` (a POSIX record lock), writes a
// temp file, renames it over qubes.xml, and refuses to save when the file's mtime
// changed since it loaded it. We do the same, with open-file-description (OFD)
// locks: on Linux OFD locks and POSIX record locks conflict with each other, so
// qubesd and `lq` exclude each other; and unlike POSIX locks, an OFD lock belongs
// to one `open()`, not to the whole process, so two threads of one process also
// exclude each other, and closing some other fd of the file does not drop the lock.

// Linux fcntl commands for OFD locks; the Glibc module does not export them.
private let F_OFD_GETLK: Int32 = 36
private let F_OFD_SETLK: Int32 = 37
private let F_OFD_SETLKW: Int32 = 38

/// Every file-system call the store makes goes through this seam, so tests can inject a failure at each step.
public protocol FileSystem: Sendable {
    /// Opens `path` (O_CLOEXEC is always added) and returns the fd.
    func open(_ path: String, flags: Int32, mode: UInt32) throws -> Int32
    /// Closes `fd`, ignoring errors.
    func close(_ fd: Int32)
    func fstat(_ fd: Int32) throws -> FileStamp
    func stat(_ path: String) throws -> FileStamp
    /// The whole file, read from offset 0.
    func read(_ fd: Int32) throws -> [UInt8]
    /// Writes all of `bytes`, looping over short writes and retrying EINTR.
    func write(_ fd: Int32, _ bytes: [UInt8]) throws
    func fsync(_ fd: Int32) throws
    func rename(_ from: String, _ to: String) throws
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
        self.device = device
        self.inode = inode
        self.size = size
        self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds
    }

    init(_ st: Glibc.stat) {
        self.init(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
            mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: Int64(st.st_mtim.tv_nsec))
    }
}

/// Permission bits (`mode & 0o7777`), owner and group of a file, carried over when it is replaced.
public struct FileAttributes: Sendable, Hashable {
    public var permissions: UInt32
    public var owner: UInt32
    public var group: UInt32

    public init(permissions: UInt32, owner: UInt32, group: UInt32) {
        self.permissions = permissions
        self.owner = owner
        self.group = group
    }
}

/// The real file system: Glibc calls, O_CLOEXEC everywhere, errors as
/// `StoreError(.osError, "<call> <path>: <strerror> (errno N)", file: path)`.
public struct SystemFileSystem: FileSystem {
    public init() {}

    public func open(_ path: String, flags: Int32, mode: UInt32) throws -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode_t(mode))
            if fd >= 0 { return fd }
            let code = errno
            if code != EINTR { throw osError("open", path, code) }
        }
    }

    public func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public func fstat(_ fd: Int32) throws -> FileStamp {
        FileStamp(try fstatRaw(fd))
    }

    public func stat(_ path: String) throws -> FileStamp {
        var st = Glibc.stat()
        guard statPath(path, &st) == 0 else { throw osError("stat", path, errno) }
        return FileStamp(st)
    }

    public func read(_ fd: Int32) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let offset = off_t(result.count)
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n > 0 {
                result.append(contentsOf: chunk[0..<n])
            } else if n == 0 {
                return result
            } else {
                let code = errno
                if code != EINTR { throw osError("read", pathOf(fd), code) }
            }
        }
    }

    public func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n >= 0 {
                offset += n
            } else {
                let code = errno
                if code != EINTR { throw osError("write", pathOf(fd), code) }
            }
        }
    }

    public func fsync(_ fd: Int32) throws {
        while Glibc.fsync(fd) != 0 {
            let code = errno
            if code != EINTR { throw osError("fsync", pathOf(fd), code) }
        }
    }

    public func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw osError("rename", "\(from) -> \(to)", errno, file: to) }
    }

    public func unlink(_ path: String) throws {
        guard Glibc.unlink(path) == 0 else { throw osError("unlink", path, errno) }
    }

    public func lock(_ fd: Int32, exclusive: Bool) throws {
        var request = Glibc.flock()
        request.l_type = Int16(exclusive ? F_WRLCK : F_RDLCK)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = 0
        request.l_len = 0  // the whole file
        request.l_pid = 0  // required for OFD locks
        while fcntl(fd, F_OFD_SETLKW, &request) != 0 {
            let code = errno
            if code != EINTR { throw osError("lock", pathOf(fd), code) }
        }
    }

    public func attributes(_ fd: Int32) throws -> FileAttributes {
        let st = try fstatRaw(fd)
        return FileAttributes(permissions: UInt32(st.st_mode) & 0o7777, owner: st.st_uid, group: st.st_gid)
    }

    public func setAttributes(_ fd: Int32, _ attributes: FileAttributes) throws {
        let st = try fstatRaw(fd)
        // chown first: it may clear set-id bits, which fchmod then sets again.
        if st.st_uid != attributes.owner || st.st_gid != attributes.group {
            guard fchown(fd, attributes.owner, attributes.group) == 0 else {
                let code = errno
                throw osError("fchown", pathOf(fd), code)
            }
        }
        guard fchmod(fd, mode_t(attributes.permissions)) == 0 else {
            let code = errno
            throw osError("fchmod", pathOf(fd), code)
        }
    }

    private func fstatRaw(_ fd: Int32) throws -> Glibc.stat {
        var st = Glibc.stat()
        guard Glibc.fstat(fd, &st) == 0 else {
            let code = errno
            throw osError("fstat", pathOf(fd), code)
        }
        return st
    }
}

/// stat(2); a free function because `Glibc.stat` names the struct, and `stat` inside the struct the method.
private func statPath(_ path: String, _ st: inout Glibc.stat) -> Int32 {
    stat(path, &st)
}

private func osError(_ call: String, _ path: String, _ code: Int32, file: String? = nil) -> StoreError {
    StoreError(.osError, "\(call) \(path): \(String(cString: strerror(code))) (errno \(code))", file: file ?? path)
}

/// The path an fd was opened with (from /proc/self/fd), for error messages.
private func pathOf(_ fd: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
    guard n > 0 else { return "fd \(fd)" }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Numbers temp files so concurrent writers in one process never pick the same name.
private final class TempCounter: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: UInt64 = 0

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    func next() -> UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        value += 1
        return value
    }
}

private let tempCounter = TempCounter()

/// One store file (qubes.xml), read and replaced under the same locks qubesd uses.
public struct StoreFile: Sendable {
    public let path: String
    public let fileSystem: any FileSystem
    /// Permission bits of the file when `replace` has to create it.
    public let newFileMode: UInt32

    /// How often to reopen after finding that the file was replaced while we waited for its lock.
    /// Each retry means another writer finished a save, so this only bounds a pathological loop;
    /// it is large because under contention one waiter can lose many rounds in a row.
    static let maxLockAttempts = 1000

    public init(path: String, fileSystem: any FileSystem = SystemFileSystem(), newFileMode: UInt32 = 0o660) {
        self.path = path
        self.fileSystem = fileSystem
        self.newFileMode = newFileMode
    }

    /// Reads the file under a shared lock. Returns the bytes and the stamp of what was read.
    public func read() throws -> (bytes: [UInt8], stamp: FileStamp) {
        let locked = try openLocked(exclusive: false, create: false)
        defer { fileSystem.close(locked.fd) }
        return (try fileSystem.read(locked.fd), locked.stamp)
    }

    /// Replaces the file atomically under an exclusive lock, and returns the stamp of the new file.
    ///
    /// With `expecting` nil the file is created (mode `newFileMode`) if it does not exist; otherwise it
    /// must exist and still have exactly that stamp, else this throws
    /// `.qubesException` "Someone else modified qubes.xml in the meantime" and changes nothing.
    /// The new content goes to a temp file in the same directory (keeping the old file's mode,
    /// owner and group), which is fsynced and renamed over the file; then the directory is fsynced.
    /// On failure before the rename the old file is intact and the temp file removed. If only the
    /// final directory fsync fails, the new content is in place but may not survive a crash.
    @discardableResult
    public func replace(with bytes: [UInt8], expecting: FileStamp?) throws -> FileStamp {
        let locked = try openLocked(exclusive: true, create: expecting == nil)
        defer { fileSystem.close(locked.fd) }
        if let expecting, locked.stamp != expecting {
            throw StoreError(.qubesException, "Someone else modified qubes.xml in the meantime", file: path)
        }
        return try writeLocked(bytes, over: locked)
    }

    /// Runs `body` while holding the exclusive lock on the file (which must exist), passing its
    /// current bytes and stamp. If `body` returns bytes, they replace the file atomically as in
    /// `replace`, before the lock is released, and the new stamp is returned; if it returns nil,
    /// nothing is written and the current stamp is returned. Two processes (or threads) running
    /// `modify` never lose each other's updates.
    @discardableResult
    public func modify(_ body: (_ bytes: [UInt8], _ stamp: FileStamp) throws -> [UInt8]?) throws -> FileStamp {
        let locked = try openLocked(exclusive: true, create: false)
        defer { fileSystem.close(locked.fd) }
        guard let bytes = try body(try fileSystem.read(locked.fd), locked.stamp) else { return locked.stamp }
        return try writeLocked(bytes, over: locked)
    }

    private struct LockedFile {
        var fd: Int32
        var stamp: FileStamp
        /// We created the (empty) file because it did not exist.
        var created: Bool
    }

    /// Opens and locks the file at `path`, reopening when it was replaced while we waited.
    private func openLocked(exclusive: Bool, create: Bool) throws -> LockedFile {
        for _ in 0..<Self.maxLockAttempts {
            var created = false
            let fd: Int32
            do {
                // Exclusive OFD locks need an fd open for writing.
                fd = try fileSystem.open(path, flags: exclusive ? O_RDWR : O_RDONLY, mode: 0)
            } catch {
                // Create only when asked to and nothing is there; O_EXCL never truncates a file
                // that appeared meanwhile.
                guard create, (try? fileSystem.stat(path)) == nil else { throw error }
                fd = try fileSystem.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: newFileMode)
                created = true
            }
            do {
                try fileSystem.lock(fd, exclusive: exclusive)
                let stamp = try fileSystem.fstat(fd)
                let current = try fileSystem.stat(path)
                if stamp.device == current.device && stamp.inode == current.inode {
                    return LockedFile(fd: fd, stamp: stamp, created: created)
                }
            } catch {
                fileSystem.close(fd)
                throw error
            }
            fileSystem.close(fd)  // replaced while we waited for the lock: lock the new file instead
        }
        throw StoreError(
            .osError, "lock \(path): the file kept being replaced while waiting for its lock", file: path)
    }

    /// Writes `bytes` to a temp file and renames it over `path`; the caller holds the exclusive lock.
    private func writeLocked(_ bytes: [UInt8], over locked: LockedFile) throws -> FileStamp {
        let (directory, tempPath) = tempLocation()
        var directoryFD: Int32 = -1
        var tempFD: Int32 = -1
        var renamed = false
        defer {
            if tempFD >= 0 { fileSystem.close(tempFD) }
            if directoryFD >= 0 { fileSystem.close(directoryFD) }
        }
        do {
            var attributes = try fileSystem.attributes(locked.fd)
            if locked.created { attributes.permissions = newFileMode }
            directoryFD = try fileSystem.open(directory, flags: O_RDONLY | O_DIRECTORY, mode: 0)
            tempFD = try fileSystem.open(tempPath, flags: O_CREAT | O_EXCL | O_WRONLY, mode: attributes.permissions)
            try fileSystem.setAttributes(tempFD, attributes)
            try fileSystem.write(tempFD, bytes)
            try fileSystem.fsync(tempFD)
            let stamp = try fileSystem.fstat(tempFD)
            try fileSystem.rename(tempPath, path)
            renamed = true
            try fileSystem.fsync(directoryFD)
            return stamp
        } catch {
            if !renamed {
                if tempFD >= 0 { try? fileSystem.unlink(tempPath) }
                // Do not leave behind the empty file we created just to lock it.
                if locked.created { try? fileSystem.unlink(path) }
            }
            throw error
        }
    }

    /// The directory of `path`, and a fresh temp file name in it: ".<basename>.tmp-<pid>-<counter>".
    private func tempLocation() -> (directory: String, tempPath: String) {
        let suffix = ".tmp-\(getpid())-\(tempCounter.next())"
        guard let slash = path.lastIndex(of: "/") else { return (".", "." + path + suffix) }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        let base = path[path.index(after: slash)...]
        return (directory, String(path[...slash]) + "." + base + suffix)
    }
}
