import Glibc
import SystemLayer

// Safe persistence of qubes.xml, compatible with a running qubesd: the locks qubesd takes and the
// atomic replace are the system layer's (docs/system-layer.md, "Locks", "Atomic replace"); this file
// adds the stamp check qubesd makes before it saves, and reports failed calls as `StoreError`s.

extension StoreError {
    /// A failed system call, as `.osError` with its message ("<call> <path>: <strerror> (errno N)"),
    /// naming the path it failed on (a rename's destination), else `file`.
    init(_ error: SystemError, file: String) {
        self.init(.osError, error.description, file: error.target ?? error.path ?? file)
    }
}

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

    /// The stamp of the file as it is now (`stat`, without a lock).
    public func stamp() throws -> FileStamp {
        try reporting { try fileSystem.stat(path) }
    }

    /// Reads the file under a shared lock. Returns the bytes and the stamp of what was read.
    public func read() throws -> (bytes: [UInt8], stamp: FileStamp) {
        try reporting {
            let locked = try openLocked(exclusive: false, create: false)
            defer { fileSystem.close(locked.fd) }
            return (try fileSystem.read(locked.fd), locked.stamp)
        }
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
        try reporting {
            if expecting == nil, (try? fileSystem.stat(path)) == nil {
                // A new file is put in place whole by the atomic replace, never created empty to be locked
                // first, so a writer killed meanwhile leaves no empty file (docs/crash-safety.md). Nobody
                // holds a lock on a file that is not there; two creators each rename a whole file in place.
                return try fileSystem.replaceFile(path, with: bytes, attributes: .newFile(permissions: newFileMode))
            }
            let locked = try openLocked(exclusive: true, create: expecting == nil)
            defer { fileSystem.close(locked.fd) }
            if let expecting, locked.stamp != expecting {
                throw StoreError(.qubesException, "Someone else modified qubes.xml in the meantime", file: path)
            }
            return try writeLocked(bytes, over: locked)
        }
    }

    /// Runs `body` while holding the exclusive lock on the file (which must exist), passing its
    /// current bytes and stamp. If `body` returns bytes, they replace the file atomically as in
    /// `replace`, before the lock is released, and the new stamp is returned; if it returns nil,
    /// nothing is written and the current stamp is returned. Two processes (or threads) running
    /// `modify` never lose each other's updates.
    @discardableResult
    public func modify(_ body: (_ bytes: [UInt8], _ stamp: FileStamp) throws -> [UInt8]?) throws -> FileStamp {
        try reporting {
            let locked = try openLocked(exclusive: true, create: false)
            defer { fileSystem.close(locked.fd) }
            guard let bytes = try body(try fileSystem.read(locked.fd), locked.stamp) else { return locked.stamp }
            return try writeLocked(bytes, over: locked)
        }
    }

    /// Runs `body`, turning a failed system call into a `StoreError` naming this file.
    private func reporting<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as SystemError {
            throw StoreError(error, file: path)
        }
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

    /// Writes `bytes` over `path` with the system layer's atomic replace, keeping the old file's mode,
    /// owner and group; the caller holds the exclusive lock.
    private func writeLocked(_ bytes: [UInt8], over locked: LockedFile) throws -> FileStamp {
        do {
            var attributes = try fileSystem.attributes(locked.fd)
            if locked.created { attributes.permissions = newFileMode }
            return try fileSystem.replaceFile(path, with: bytes, attributes: attributes)
        } catch {
            // Do not leave behind the empty file we created just to lock it (unless the rename replaced it).
            if locked.created, (try? fileSystem.stat(path)) == locked.stamp { try? fileSystem.unlink(path) }
            throw error
        }
    }
}
