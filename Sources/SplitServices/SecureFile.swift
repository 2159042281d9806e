import SystemLayer

/// Reading and replacing files in a store folder without ever following a symlink below it.
struct SecureFile {
    let system: any SystemCalls

    /// The bytes of `root/components…`, opened component by component with `O_NOFOLLOW`, refused unless it
    /// is a regular file with one link and at most `limit` bytes. `root` itself is trusted (it may be a link).
    func read(_ root: String, _ components: [Name], limit: Int) throws(SplitError) -> (bytes: [UInt8], info: FileInfo) {
        let path = ([root] + components.map(shown)).joined(separator: "/")
        var opened: [Descriptor] = []
        defer { opened.forEach(system.close) }
        do {
            opened = try openFolders(root, components.dropLast())
            let fd = try system.openFile(opened[opened.count - 1], components.last ?? [])
            opened.append(fd)
            let info = try system.status(fd)
            guard info.type == .regular else { throw SplitError(.unsafe, "\(path): a \(info.type.rawValue), not a file; refused") }
            guard info.links == 1 else { throw SplitError(.unsafe, "\(path): has \(info.links) hard links; refused") }
            guard info.size <= Int64(limit) else { throw SplitError(.tooLarge, "\(path): \(info.size) bytes, over the limit of \(limit); refused") }
            let bytes = try system.read(fd, limit: limit)
            guard bytes.count <= limit else { throw SplitError(.tooLarge, "\(path): over the limit of \(limit) bytes; refused") }
            return (bytes, info)
        } catch let error as SplitError {
            throw error
        } catch let error as SystemError {
            throw Self.refusal(error, path)
        } catch {
            throw SplitError(.system, "\(path): \(error)")
        }
    }

    /// The names in the folder `root/components…` (opened as `read` opens them), sorted; dot-files left out.
    func names(_ root: String, _ components: [Name]) throws(SplitError) -> [Name] {
        let path = ([root] + components.map(shown)).joined(separator: "/")
        var opened: [Descriptor] = []
        defer { opened.forEach(system.close) }
        do {
            opened = try openFolders(root, components[...])
            return try system.entries(opened[opened.count - 1]).filter { $0.first != UInt8(ascii: ".") }.sorted { $0.lexicographicallyPrecedes($1) }
        } catch {
            throw Self.refusal(error, path)
        }
    }

    /// `root` (trusted: it may be a link), then each of `components` below it without following a
    /// symlink: the open folders, the deepest last. On a failure, none stays open.
    private func openFolders(_ root: String, _ components: ArraySlice<Name>) throws(SystemError) -> [Descriptor] {
        var opened = [try system.openDirectory(currentDirectory, Array(root.utf8), followSymlink: true)]
        do {
            for component in components { opened.append(try system.openDirectory(opened[opened.count - 1], component, followSymlink: false)) }
        } catch {
            opened.forEach(system.close)
            throw error
        }
        return opened
    }

    /// Replaces `dir/name` atomically: a new file `.name.new` (0600), owner and group, then the mode,
    /// the bytes, fsync, the immutable flag cleared on the old file, rename over it, fsync of the folder.
    func replace(_ dir: Descriptor, _ name: Name, with bytes: [UInt8], owner: UInt32, group: UInt32, mode: UInt32, path: String) throws(SplitError) {
        let temporary = Array(".".utf8) + name + Array(".new".utf8)
        do {
            if let stale = try system.status(dir, temporary) {
                try system.remove(dir, temporary, directory: stale.type == .directory)
            }
            let fd = try system.createFile(dir, temporary)
            defer { system.close(fd) }
            try system.setOwner(fd, owner: owner, group: group)
            try system.setPermissions(fd, mode)
            try system.write(fd, bytes)
            try system.sync(fd)
            if let old = try system.status(dir, name), old.type == .regular {
                let oldFD = try system.openFile(dir, name)
                defer { system.close(oldFD) }
                if let flags = try? system.flags(oldFD), flags.contains(.immutable) {
                    try system.setFlags(oldFD, flags.subtracting(.immutable))
                }
            }
            try system.rename(dir, temporary, dir, name, replace: true)
            try system.sync(dir)
        } catch {
            try? system.remove(dir, temporary, directory: false)
            throw Self.refusal(error, path)
        }
    }

    /// A failed call as a refusal naming the path: missing, a symlink in the way, or a system error.
    static func refusal(_ error: SystemError, _ path: String) -> SplitError {
        if error.isNotFound { return SplitError(.notFound, "\(path): no such file or folder") }
        if error.isUnexpectedType { return SplitError(.unsafe, "\(path): a symlink or not a folder on the way; refused") }
        return SplitError(.system, "\(path): \(error)")
    }
}
