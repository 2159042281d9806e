import Glibc

// The only file of BootProtect (and of SplitServices, which uses it) that calls the OS.
//
// Every call on a private volume is relative to an open directory (`openat`, `fstatat`,
// `renameat2`, `unlinkat`, `mkdirat`, `symlinkat`, `mknodat`) and never follows a symlink:
// `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`. Names are raw bytes. Ownership and modes are changed
// on open descriptors after checking what they refer to (`fchown`, then `fchmod`).

/// One path component (a file name) as raw bytes: any byte but `/` and NUL.
public typealias Name = [UInt8]

/// An open file descriptor.
public typealias Descriptor = Int32

/// A failed system call: its name and the errno.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    public var call: String
    public var code: Int32

    public init(_ call: String, _ code: Int32) {
        self.call = call
        self.code = code
    }

    public var description: String { "\(call): \(String(cString: strerror(code))) (errno \(code))" }

    /// `ENOENT`.
    public var isNotFound: Bool { code == ENOENT }
    /// `ELOOP` or `ENOTDIR` from an `O_NOFOLLOW` open: a symlink or another type stands where a
    /// directory or file was expected.
    public var isUnexpectedType: Bool { code == ELOOP || code == ENOTDIR }
}

/// The type of a file system entry, from `st_mode` without following symlinks (`lstat`).
public enum FileType: String, Sendable, Hashable {
    case regular = "file"
    case directory
    case symlink
    case socket
    case fifo
    case characterDevice = "character device"
    case blockDevice = "block device"
    case unknown
}

/// What `fstatat(…, AT_SYMLINK_NOFOLLOW)` or `fstat` says about an entry.
public struct FileInfo: Sendable, Hashable {
    public var type: FileType
    /// `st_mode & 0o7777`.
    public var permissions: UInt32
    public var owner: UInt32
    public var group: UInt32
    public var size: Int64
    /// Hard links (`st_nlink`).
    public var links: UInt64
    public var device: UInt64
    public var inode: UInt64
    public var modificationSeconds: Int64
    public var modificationNanoseconds: Int64

    init(_ st: Glibc.stat) {
        let type: FileType
        switch st.st_mode & S_IFMT {
        case S_IFREG: type = .regular
        case S_IFDIR: type = .directory
        case S_IFLNK: type = .symlink
        case S_IFSOCK: type = .socket
        case S_IFIFO: type = .fifo
        case S_IFCHR: type = .characterDevice
        case S_IFBLK: type = .blockDevice
        default: type = .unknown
        }
        self.type = type
        (permissions, owner, group) = (UInt32(st.st_mode) & 0o7777, st.st_uid, st.st_gid)
        (size, links, device, inode) = (Int64(st.st_size), UInt64(st.st_nlink), UInt64(st.st_dev), UInt64(st.st_ino))
        (modificationSeconds, modificationNanoseconds) = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
    }

    /// Same inode on the same device: the entry was not swapped since it was looked at.
    public func isSameEntry(as other: FileInfo) -> Bool {
        device == other.device && inode == other.inode && type == other.type
    }
}

/// A finished child process.
public struct ProcessOutput: Sendable, Hashable {
    /// The exit status, or 128 + signal number.
    public var status: Int32
    public var output: [UInt8]
}

/// `FS_IMMUTABLE_FL` and `FS_NODUMP_FL` (chattr `i` and `d`).
public struct InodeFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let immutable = InodeFlags(rawValue: 0x10)
    public static let noDump = InodeFlags(rawValue: 0x40)
}

/// Every OS call the guard and the split services make. `HostSystem` is the real one;
/// tests wrap it to record calls or to change the disk between two of them.
public protocol SystemCalls: Sendable {
    /// `openat(dir, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)`; `followSymlink` drops `O_NOFOLLOW`
    /// (only for trusted roots given by the administrator).
    func openDirectory(_ dir: Descriptor, _ name: Name, followSymlink: Bool) throws(SystemError) -> Descriptor
    /// `openat(dir, name, O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_NOCTTY|O_CLOEXEC)`: never blocks on a FIFO.
    func openFile(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Descriptor
    /// `openat(dir, name, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600)`.
    func createFile(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Descriptor
    func close(_ fd: Descriptor)
    /// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `nil` when there is no such entry.
    func status(_ dir: Descriptor, _ name: Name) throws(SystemError) -> FileInfo?
    /// `fstat(fd)`.
    func status(_ fd: Descriptor) throws(SystemError) -> FileInfo
    /// The names in an open directory, without `.` and `..`, in directory order.
    func entries(_ fd: Descriptor) throws(SystemError) -> [Name]
    /// `readlinkat(dir, name)`: the symlink's text.
    func readLink(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Name
    /// Reads from offset 0 at most `limit + 1` bytes, so a caller can tell a file over the limit.
    func read(_ fd: Descriptor, limit: Int) throws(SystemError) -> [UInt8]
    /// Reads a stream (stdin, a pipe) to its end, or until it has seen `lines` newlines, keeping at most
    /// `limit + 1` bytes.
    func read(stream fd: Descriptor, limit: Int, lines: Int) throws(SystemError) -> [UInt8]
    /// Writes all bytes, looping over short writes and retrying `EINTR`.
    func write(_ fd: Descriptor, _ bytes: [UInt8]) throws(SystemError)
    /// `fsync(fd)`.
    func sync(_ fd: Descriptor) throws(SystemError)
    /// `mkdirat(dir, name, 0700)`.
    func makeDirectory(_ dir: Descriptor, _ name: Name) throws(SystemError)
    /// `symlinkat(target, dir, name)`.
    func makeSymlink(_ target: Name, _ dir: Descriptor, _ name: Name) throws(SystemError)
    /// `mknodat(dir, name, S_IFSOCK|0600)`.
    func makeSocket(_ dir: Descriptor, _ name: Name) throws(SystemError)
    /// `renameat2(…, RENAME_NOREPLACE)`, or with `replace` a plain `renameat`.
    func rename(_ fromDir: Descriptor, _ from: Name, _ toDir: Descriptor, _ to: Name, replace: Bool) throws(SystemError)
    /// `unlinkat(dir, name, directory ? AT_REMOVEDIR : 0)`.
    func remove(_ dir: Descriptor, _ name: Name, directory: Bool) throws(SystemError)
    /// `fchown(fd, owner, group)`.
    func setOwner(_ fd: Descriptor, owner: UInt32, group: UInt32) throws(SystemError)
    /// `fchmod(fd, permissions)`.
    func setPermissions(_ fd: Descriptor, _ permissions: UInt32) throws(SystemError)
    /// `fchownat(dir, name, owner, group, AT_SYMLINK_NOFOLLOW)`: for symlinks and sockets.
    func setOwner(_ dir: Descriptor, _ name: Name, owner: UInt32, group: UInt32) throws(SystemError)
    /// `fchmodat(dir, name, permissions, AT_SYMLINK_NOFOLLOW)`: for sockets (fails on a symlink).
    func setPermissions(_ dir: Descriptor, _ name: Name, _ permissions: UInt32) throws(SystemError)
    /// `futimens(fd, [now, mtime])`.
    func setModificationTime(_ fd: Descriptor, seconds: Int64, nanoseconds: Int64) throws(SystemError)
    /// `ioctl(fd, FS_IOC_GETFLAGS)`.
    func flags(_ fd: Descriptor) throws(SystemError) -> InodeFlags
    /// `ioctl(fd, FS_IOC_SETFLAGS)`.
    func setFlags(_ fd: Descriptor, _ flags: InodeFlags) throws(SystemError)
    /// Nanoseconds since the epoch (`CLOCK_REALTIME`), for `<name>.<ns>` quarantine names.
    func now() -> UInt64
    /// The first `count` bytes of a file or device (fewer if it is shorter).
    func readPrefix(_ path: String, count: Int) throws(SystemError) -> [UInt8]
    /// `mount(device, target, "ext4", MS_NOATIME, "discard")`.
    func mount(_ device: String, at target: String) throws(SystemError)
    /// `umount2(target, MNT_FORCE|MNT_DETACH)`.
    func unmount(_ target: String) throws(SystemError)
    /// Runs `executable` (an absolute path, no shell, empty environment but `PATH`) with `arguments`,
    /// feeds it `input` and returns its status and at most `outputLimit + 1` bytes of its stdout.
    func run(_ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int) throws(SystemError) -> ProcessOutput
}

/// The directory `openat` resolves relative names against: use it with absolute paths.
public let currentDirectory: Descriptor = AT_FDCWD

/// The real system calls. `beforeCall`, when set, runs before each call on a name with the call's name
/// and the name: tests use it to change the disk between a scan and an action.
public struct HostSystem: SystemCalls {
    public typealias Hook = @Sendable (_ call: String, _ name: Name) -> Void
    public var beforeCall: Hook?

    public init(beforeCall: Hook? = nil) { self.beforeCall = beforeCall }

    private func hook(_ call: String, _ name: Name) { beforeCall?(call, name) }

    public func openDirectory(_ dir: Descriptor, _ name: Name, followSymlink: Bool) throws(SystemError) -> Descriptor {
        hook("openat", name)
        let flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followSymlink ? 0 : O_NOFOLLOW)
        return try retrying("openat") { withCName(name) { openat(dir, $0, flags) } }
    }

    public func openFile(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Descriptor {
        hook("openat", name)
        let flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
        return try retrying("openat") { withCName(name) { openat(dir, $0, flags) } }
    }

    public func createFile(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Descriptor {
        hook("openat", name)
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        return try retrying("openat") { withCName(name) { openat(dir, $0, flags, mode_t(0o600)) } }
    }

    public func close(_ fd: Descriptor) { _ = Glibc.close(fd) }

    public func status(_ dir: Descriptor, _ name: Name) throws(SystemError) -> FileInfo? {
        hook("fstatat", name)
        var st = Glibc.stat()
        let result = withCName(name) { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }
        if result == 0 { return FileInfo(st) }
        let code = errno
        if code == ENOENT { return nil }
        throw SystemError("fstatat", code)
    }

    public func status(_ fd: Descriptor) throws(SystemError) -> FileInfo {
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("fstat", errno) }
        return FileInfo(st)
    }

    public func entries(_ fd: Descriptor) throws(SystemError) -> [Name] {
        let copy = dup(fd)
        guard copy >= 0 else { throw SystemError("dup", errno) }
        guard let stream = fdopendir(copy) else {
            let code = errno
            _ = Glibc.close(copy)
            throw SystemError("fdopendir", code)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [Name] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError("readdir", errno) }
                return names
            }
            let name: Name = withUnsafeBytes(of: &entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
    }

    public func readLink(_ dir: Descriptor, _ name: Name) throws(SystemError) -> Name {
        hook("readlinkat", name)
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = withCName(name) { cName in
            buffer.withUnsafeMutableBufferPointer { readlinkat(dir, cName, $0.baseAddress!, $0.count) }
        }
        guard count >= 0 else { throw SystemError("readlinkat", errno) }
        return Array(buffer[0..<count])
    }

    public func read(_ fd: Descriptor, limit: Int) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while result.count <= limit {
            let offset = off_t(result.count)
            let wanted = min(chunk.count, limit + 1 - result.count)
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, offset) }
            if n > 0 {
                result.append(contentsOf: chunk[0..<n])
            } else if n == 0 {
                break
            } else if errno != EINTR {
                throw SystemError("read", errno)
            }
        }
        return result
    }

    public func write(_ fd: Descriptor, _ bytes: [UInt8]) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n >= 0 {
                offset += n
            } else if errno != EINTR {
                throw SystemError("write", errno)
            }
        }
    }

    public func sync(_ fd: Descriptor) throws(SystemError) {
        _ = try retrying("fsync") { fsync(fd) }
    }

    public func makeDirectory(_ dir: Descriptor, _ name: Name) throws(SystemError) {
        hook("mkdirat", name)
        try check("mkdirat", withCName(name) { mkdirat(dir, $0, mode_t(0o700)) })
    }

    public func makeSymlink(_ target: Name, _ dir: Descriptor, _ name: Name) throws(SystemError) {
        hook("symlinkat", name)
        try check("symlinkat", withCName(target) { cTarget in withCName(name) { symlinkat(cTarget, dir, $0) } })
    }

    public func makeSocket(_ dir: Descriptor, _ name: Name) throws(SystemError) {
        hook("mknodat", name)
        try check("mknodat", withCName(name) { mknodat(dir, $0, mode_t(S_IFSOCK) | 0o600, 0) })
    }

    public func rename(_ fromDir: Descriptor, _ from: Name, _ toDir: Descriptor, _ to: Name, replace: Bool) throws(SystemError) {
        hook("renameat", from)
        let result = withCName(from) { cFrom in
            withCName(to) { cTo in
                if replace { return renameat(fromDir, cFrom, toDir, cTo) }
                if let renameat2 = renameat2Function { return renameat2(fromDir, cFrom, toDir, cTo, renameNoReplace) }
                // No renameat2 in this libc: check, then rename (the guard runs before any user process).
                var st = Glibc.stat()
                if fstatat(toDir, cTo, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                    errno = EEXIST
                    return -1
                }
                return renameat(fromDir, cFrom, toDir, cTo)
            }
        }
        try check("renameat2", result)
    }

    public func remove(_ dir: Descriptor, _ name: Name, directory: Bool) throws(SystemError) {
        hook("unlinkat", name)
        try check("unlinkat", withCName(name) { unlinkat(dir, $0, directory ? AT_REMOVEDIR : 0) })
    }

    public func setOwner(_ fd: Descriptor, owner: UInt32, group: UInt32) throws(SystemError) {
        try check("fchown", fchown(fd, owner, group))
    }

    public func setPermissions(_ fd: Descriptor, _ permissions: UInt32) throws(SystemError) {
        try check("fchmod", fchmod(fd, mode_t(permissions)))
    }

    public func setOwner(_ dir: Descriptor, _ name: Name, owner: UInt32, group: UInt32) throws(SystemError) {
        hook("fchownat", name)
        try check("fchownat", withCName(name) { fchownat(dir, $0, owner, group, AT_SYMLINK_NOFOLLOW) })
    }

    public func setPermissions(_ dir: Descriptor, _ name: Name, _ permissions: UInt32) throws(SystemError) {
        hook("fchmodat", name)
        try check("fchmodat", withCName(name) { fchmodat(dir, $0, mode_t(permissions), AT_SYMLINK_NOFOLLOW) })
    }

    public func setModificationTime(_ fd: Descriptor, seconds: Int64, nanoseconds: Int64) throws(SystemError) {
        var times = [timespec(tv_sec: 0, tv_nsec: utimeOmit), timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds))]
        try check("futimens", futimens(fd, &times))
    }

    public func flags(_ fd: Descriptor) throws(SystemError) -> InodeFlags {
        var value: UInt64 = 0
        try check("ioctl(FS_IOC_GETFLAGS)", ioctl(fd, fsGetFlags, &value))
        return InodeFlags(rawValue: UInt32(truncatingIfNeeded: value))
    }

    public func setFlags(_ fd: Descriptor, _ flags: InodeFlags) throws(SystemError) {
        var value = UInt64(flags.rawValue)
        try check("ioctl(FS_IOC_SETFLAGS)", ioctl(fd, fsSetFlags, &value))
    }

    public func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    public func readPrefix(_ path: String, count: Int) throws(SystemError) -> [UInt8] {
        let fd = try retrying("open") { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) }
        defer { Glibc.close(fd) }
        return Array(try read(fd, limit: count).prefix(count))
    }

    public func mount(_ device: String, at target: String) throws(SystemError) {
        try check("mount", Glibc.mount(device, target, "ext4", UInt(MS_NOATIME), "discard"))
    }

    public func unmount(_ target: String) throws(SystemError) {
        try check("umount2", umount2(target, Int32(MNT_FORCE | MNT_DETACH)))
    }

    public func run(_ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int) throws(SystemError) -> ProcessOutput {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        try check("pipe", pipe(&toChild))
        try check("pipe", pipe(&fromChild))
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = [strdup("PATH=/usr/local/bin:/usr/bin:/bin"), nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid = pid_t()
        var spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        // ETXTBSY: a just-written script is still open for writing in a child another thread forked.
        for _ in 0..<50 where spawned == ETXTBSY {
            usleep(20_000)
            spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        }
        Glibc.close(toChild[0])
        Glibc.close(fromChild[1])
        guard spawned == 0 else {
            Glibc.close(toChild[1])
            Glibc.close(fromChild[0])
            throw SystemError("posix_spawn \(executable)", spawned)
        }
        // The input is written whole, then the output read: fine while the child reads its input
        // before it prints more than a pipe holds (small inputs always; large ones to quiet children).
        let previous = signal(SIGPIPE, SIG_IGN)
        try? write(toChild[1], input)
        signal(SIGPIPE, previous)
        Glibc.close(toChild[1])
        let output = (try? read(stream: fromChild[0], limit: outputLimit)) ?? []
        Glibc.close(fromChild[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        return ProcessOutput(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output: output)
    }

    public func read(stream fd: Descriptor, limit: Int, lines: Int = .max) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var newlines = 0
        while newlines < lines {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                newlines += chunk[0..<n].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                if result.count <= limit { result.append(contentsOf: chunk[0..<min(n, limit + 1 - result.count)]) }
            } else if n == 0 {
                return result
            } else if errno != EINTR {
                throw SystemError("read", errno)
            }
        }
        return result
    }
}

// Linux constants the Glibc module does not export (it is built without _GNU_SOURCE).
private let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE
private let utimeOmit = (1 << 30) - 2  // UTIME_OMIT

/// `renameat2(2)`, looked up at run time: glibc has it since 2.28, but its header hides it.
private let renameat2Function: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
    guard let symbol = dlsym(nil, "renameat2") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)
}()

// _IOR('f', 1, long) and _IOW('f', 2, long) on 64-bit Linux.
private let fsGetFlags: UInt = 0x8008_6601
private let fsSetFlags: UInt = 0x4008_6602

private func withCName<R>(_ name: Name, _ body: (UnsafePointer<CChar>) -> R) -> R {
    (name + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
    }
}

private func check(_ call: String, _ result: Int32) throws(SystemError) {
    if result != 0 { throw SystemError(call, errno) }
}

private func retrying(_ call: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno != EINTR { throw SystemError(call, errno) }
    }
}
