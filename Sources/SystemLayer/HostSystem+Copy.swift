import Glibc

// Copying a file that lies in an untrusted tree, in chunks (docs/system-layer.md, "Calls").

extension HostSystem {
    /// Opens the regular file `components` below the folder `root` for reading: `root` is opened as
    /// given (symlinks followed: the administrator names it), every component below it with
    /// `O_NOFOLLOW`, so no symlink in the tree leads out of it; a FIFO or device is refused (`ELOOP`,
    /// `ENOTDIR` or, for a non-regular file, `EINVAL`).
    public func openBeneath(_ root: String, _ components: [Name]) throws(SystemError) -> Descriptor {
        guard let last = components.last else { throw SystemError("openat", EINVAL, path: root) }
        var dir = try openDirectory(currentDirectory, Array(root.utf8), followSymlink: true)
        defer { close(dir) }
        for component in components.dropLast() {
            let next = try openDirectory(dir, component, followSymlink: false)
            close(dir)
            dir = next
        }
        let fd = try openFile(dir, last)
        guard try status(fd).type == .regular else {
            close(fd)
            throw SystemError("openat", EINVAL, path: root)
        }
        return fd
    }

    /// Copies what is left to read of `source` to `destination` in chunks of 1 MiB, handing each chunk
    /// to `each` (for a digest); returns the number of bytes copied.
    public func copy(_ source: Descriptor, to destination: Descriptor, each: ([UInt8]) -> Void) throws(SystemError) -> Int64 {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", errno)
            }
            if count == 0 { return total }
            let bytes = Array(chunk[0..<count])
            try write(destination, bytes)
            each(bytes)
            total += Int64(count)
        }
    }
}
