import Glibc

// Symlinks, pattern matching and file-system flags by path, for trusted dom0 paths (docs/system-layer.md, "Calls").

extension SystemFileSystem {
    /// Creates a symlink at `path` pointing at `target` (`symlinkat(target, AT_FDCWD, path)`).
    public func makeSymlink(_ path: String, to target: String) throws(SystemError) {
        do {
            try host.makeSymlink(Array(target.utf8), currentDirectory, Array(path.utf8))
        } catch {
            throw error.on(path)
        }
    }

    /// What the symlink at `path` points at (`readlinkat(AT_FDCWD, path)`), not resolved further.
    public func linkTarget(of path: String) throws(SystemError) -> String {
        do {
            return String(decoding: try host.readLink(currentDirectory, Array(path.utf8)), as: UTF8.self)
        } catch {
            throw error.on(path)
        }
    }

    /// The absolute path `path` names with every symlink resolved (`realpath(3)`, as `readlink -f` of an existing file).
    public func resolved(_ path: String) throws(SystemError) -> String {
        guard let pointer = realpath(path, nil) else { throw SystemError("realpath", errno, path: path) }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The existing paths that match the shell pattern `pattern` (`glob(3)`, `GLOB_NOSORT` off: sorted);
    /// none is not an error.
    public func paths(matching pattern: String) throws(SystemError) -> [String] {
        var found = glob_t()
        defer { globfree(&found) }
        switch Glibc.glob(pattern, 0, nil, &found) {
        case 0: break
        case GLOB_NOMATCH: return []
        case GLOB_NOSPACE: throw SystemError("glob", ENOMEM, path: pattern)
        default: throw SystemError("glob", EIO, path: pattern)
        }
        return (0..<Int(found.gl_pathc)).compactMap { found.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// Whether the file system holding `path` is mounted read-only (`statvfs`, `ST_RDONLY`).
    public func isOnReadOnlyFileSystem(_ path: String) throws(SystemError) -> Bool {
        var info = statvfs()
        do {
            try check("statvfs", statvfs(path, &info))
        } catch {
            throw error.on(path)
        }
        return info.f_flag & UInt(ST_RDONLY) != 0
    }
}
