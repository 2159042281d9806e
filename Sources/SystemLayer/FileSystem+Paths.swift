import Glibc

// Whole-file reads, listings and status by path, for trusted dom0 paths (docs/system-layer.md, "Calls").

extension SystemFileSystem {
    /// The bytes of the file at `path` (symlinks followed); at most `limit + 1` of them, so a caller can
    /// tell a file over the limit.
    public func contents(of path: String, limit: Int = Int.max - 1) throws(SystemError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, mode: 0)
        defer { close(fd) }
        do {
            return try host.read(fd, limit: limit)
        } catch {
            throw error.on(path)
        }
    }

    /// The names in the folder at `path` (symlinks followed), without `.` and `..`, in folder order.
    public func entries(of path: String) throws(SystemError) -> [Name] {
        do {
            let fd = try host.openDirectory(currentDirectory, Array(path.utf8), followSymlink: true)
            defer { host.close(fd) }
            return try host.entries(fd)
        } catch {
            throw error.on(path)
        }
    }

    /// What is at `path` (`lstat`, or `stat` with `followSymlink`); `nil` when nothing is there.
    public func info(of path: String, followSymlink: Bool = false) throws(SystemError) -> FileInfo? {
        var st = Glibc.stat()
        let result = followSymlink ? statPath(path, &st) : lstat(path, &st)
        if result == 0 { return FileInfo(st) }
        let code = errno
        if code == ENOENT { return nil }
        throw SystemError(followSymlink ? "stat" : "lstat", code, path: path)
    }

    /// Creates the folder at `path` and each missing folder above it (`mkdir -p`, mode 0777 less the umask).
    public func makeDirectories(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            switch try info(of: prefix, followSymlink: true)?.type {
            case .directory?: break
            case nil:
                do {
                    try host.makeDirectory(currentDirectory, Array(prefix.utf8), mode: 0o777)
                } catch {
                    // EEXIST: made meanwhile by someone else.
                    guard error.isAlreadyThere else { throw error.on(prefix) }
                }
            default: throw SystemError("mkdirat", EEXIST, path: prefix)
            }
            prefix += "/"
        }
    }

    /// Removes the entry at `path` and, when it is a folder, everything below it; symlinks are removed,
    /// never followed. Nothing at `path` is not an error.
    public func removeTree(_ path: String) throws(SystemError) {
        do {
            try removeTree(Array(path.utf8))
        } catch {
            throw error.on(path)
        }
    }

    private func removeTree(_ path: Name) throws(SystemError) {
        guard let info = try host.status(currentDirectory, path) else { return }
        if info.type == .directory {
            let fd = try host.openDirectory(currentDirectory, path, followSymlink: false)
            defer { host.close(fd) }
            for name in try host.entries(fd) { try removeTree(path + [UInt8(ascii: "/")] + name) }
        }
        try host.remove(currentDirectory, path, directory: info.type == .directory)
    }
}
