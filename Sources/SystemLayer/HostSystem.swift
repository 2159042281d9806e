import Glibc

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
        // A regular file is read into an array of its size (and one byte more, to see that it grew) in
        // one call; the rest, and anything else, in chunks.
        var info = Glibc.stat()
        let size = Glibc.fstat(fd, &info) == 0 && info.st_mode & S_IFMT == S_IFREG ? Int(info.st_size) : 0
        let first = min(limit, size) + 1
        var failure: Int32?
        var result = [UInt8](unsafeUninitializedCapacity: first) { buffer, count in
            count = 0
            while count < first {
                let n = pread(fd, buffer.baseAddress! + count, first - count, off_t(count))
                if n > 0 {
                    count += n
                } else if n == 0 {
                    return
                } else if errno != EINTR {
                    failure = errno
                    return
                }
            }
        }
        if let failure { throw SystemError("read", failure) }
        if result.count < first { return result }
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
        try makeDirectory(dir, name, mode: 0o700)
    }

    /// `mkdirat(dir, name, mode)` (the umask applies).
    public func makeDirectory(_ dir: Descriptor, _ name: Name, mode: UInt32) throws(SystemError) {
        hook("mkdirat", name)
        try check("mkdirat", withCName(name) { mkdirat(dir, $0, mode_t(mode)) })
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
}

// Linux constants the Glibc module does not export (it is built without _GNU_SOURCE).
let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE
let utimeOmit = (1 << 30) - 2  // UTIME_OMIT

/// `renameat2(2)`, looked up at run time: glibc has it since 2.28, but its header hides it.
let renameat2Function: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
    guard let symbol = dlsym(nil, "renameat2") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)
}()

// _IOR('f', 1, long) and _IOW('f', 2, long) on 64-bit Linux.
let fsGetFlags: UInt = 0x8008_6601
let fsSetFlags: UInt = 0x4008_6602

func withCName<R>(_ name: Name, _ body: (UnsafePointer<CChar>) -> R) -> R {
    (name + [0]).withUnsafeBufferPointer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
    }
}

func check(_ call: String, _ result: Int32) throws(SystemError) {
    if result != 0 { throw SystemError(call, errno) }
}

func retrying(_ call: String, _ body: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno != EINTR { throw SystemError(call, errno) }
    }
}
