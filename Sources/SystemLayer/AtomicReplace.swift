import Glibc

extension FileSystem {
    /// Replaces the file at `path` with `bytes` atomically, and returns the stamp of the new file
    /// (docs/system-layer.md, "Atomic replace").
    ///
    /// The bytes go to a fresh temp file in the same folder, `.<name>.tmp-<pid>-<counter>` (a name
    /// starting with `.`, which qrexec and the shard search skip), created with `attributes` (mode,
    /// owner and group); it is fsynced and renamed over `path`, then the folder is fsynced. On a failure
    /// before the rename the file at `path` is untouched and the temp file removed. If only the final
    /// folder fsync fails, the new content is in place but may not survive a crash. After the rename,
    /// temp files of `path` left by writers that were killed are removed. The caller holds whatever
    /// lock guards `path`.
    public func replaceFile(_ path: String, with bytes: [UInt8], attributes: FileAttributes) throws -> FileStamp {
        let (directory, tempPath) = temporaryLocation(for: path)
        var directoryFD: Int32 = -1
        var tempFD: Int32 = -1
        var renamed = false
        defer {
            if tempFD >= 0 { close(tempFD) }
            if directoryFD >= 0 { close(directoryFD) }
        }
        do {
            directoryFD = try open(directory, flags: O_RDONLY | O_DIRECTORY, mode: 0)
            tempFD = try open(tempPath, flags: O_CREAT | O_EXCL | O_WRONLY, mode: attributes.permissions)
            try setAttributes(tempFD, attributes)
            try write(tempFD, bytes)
            try fsync(tempFD)
            let stamp = try fstat(tempFD)
            try rename(tempPath, path)
            renamed = true
            try fsync(directoryFD)
            removeStaleTemporaries(of: path, in: directory)
            return stamp
        } catch {
            if !renamed && tempFD >= 0 { try? unlink(tempPath) }
            throw error
        }
    }
}

extension FileSystem {
    /// Removes the temp files of `path` that a writer killed between creating and renaming them left
    /// behind (`.<name>.tmp-<pid>-<counter>` whose process is gone), so an interrupted run that is run
    /// again leaves none (docs/system-layer.md, "Atomic replace"). Best effort: a failure leaves them.
    func removeStaleTemporaries(of path: String, in directory: String) {
        let base = path.lastIndex(of: "/").map { path[path.index(after: $0)...] } ?? path[...]
        let prefix = "." + base + ".tmp-"
        guard let folder = opendir(directory) else { return }
        var stale: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            guard name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count).split(separator: "-", omittingEmptySubsequences: false)
            guard rest.count == 2, let pid = pid_t(rest[0]), UInt64(rest[1]) != nil, pid > 0 else { continue }
            if Glibc.kill(pid, 0) != 0 && errno == ESRCH { stale.append(name) }
        }
        closedir(folder)
        for name in stale { try? unlink(directory + "/" + name) }
    }
}

/// The folder of `path`, and a fresh temp file name in it: ".<basename>.tmp-<pid>-<counter>".
private func temporaryLocation(for path: String) -> (directory: String, tempPath: String) {
    let suffix = ".tmp-\(getpid())-\(tempCounter.next())"
    guard let slash = path.lastIndex(of: "/") else { return (".", "." + path + suffix) }
    let directory = slash == path.startIndex ? "/" : String(path[..<slash])
    let base = path[path.index(after: slash)...]
    return (directory, String(path[...slash]) + "." + base + suffix)
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
