import Glibc

// Every OS call of the in-qube tools goes through `SystemCalls` (docs/system-layer.md, "Calls").
//
// Every call on a private volume is relative to an open directory (`openat`, `fstatat`,
// `renameat2`, `unlinkat`, `mkdirat`, `symlinkat`, `mknodat`) and never follows a symlink:
// `O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`. Names are raw bytes. Ownership and modes are changed
// on open descriptors after checking what they refer to (`fchown`, then `fchmod`).

/// Every OS call the in-qube tools make (the guard, the split services). `HostSystem` is the real one;
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
    /// Runs `executable` (an absolute path, no shell, an environment of `PATH` and `environment` only)
    /// with `arguments`, feeds it `input` and returns its status and at most `outputLimit + 1` bytes of its stdout.
    func run(
        _ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int, environment: [String: String]
    ) throws(SystemError) -> ProcessOutput
    /// Connects to the Unix stream socket at `path`.
    func connect(socket path: String) throws(SystemError) -> Descriptor
    /// Reads `count` bytes from a stream, fewer only when it ends first.
    func read(_ fd: Descriptor, exactly count: Int) throws(SystemError) -> [UInt8]
}

extension SystemCalls {
    /// `run` with no environment but `PATH`.
    public func run(_ executable: String, _ arguments: [String], input: [UInt8], outputLimit: Int) throws(SystemError) -> ProcessOutput {
        try run(executable, arguments, input: input, outputLimit: outputLimit, environment: [:])
    }
}

/// The directory `openat` resolves relative names against: use it with absolute paths.
public let currentDirectory: Descriptor = AT_FDCWD
