import Glibc
import QubesStore

/// What a path is, following symbolic links.
public enum PolicyEntryKind: Sendable, Hashable {
    case file, directory, other, missing
}

/// The file access the loader needs, so tests and generators can load policy from memory.
public protocol PolicyFileSystem: Sendable {
    /// What `path` is (symbolic links followed, as qrexec's `is_file()` does).
    func kind(of path: String) -> PolicyEntryKind
    /// The entry names of a directory, in any order.
    func entries(of directory: String) throws(PolicyError) -> [String]
    /// The whole file; an error when it is longer than `limit` bytes.
    func read(_ path: String, limit: Int) throws(PolicyError) -> [UInt8]
}

/// The real file system (the only place this module touches the OS).
public struct SystemPolicyFiles: PolicyFileSystem {
    public init() {}

    public func kind(of path: String) -> PolicyEntryKind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    public func entries(of directory: String) throws(PolicyError) -> [String] {
        guard let handle = opendir(directory) else { throw failure("open directory", directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func read(_ path: String, limit: Int) throws(PolicyError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure("open", path) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw failure("read", path) }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            guard bytes.count <= limit else { throw PolicyError.tooLarge(path, limit: limit) }
        }
    }

    /// Replaces `name` in `directory` atomically, as the store writes
    /// qubes.xml: a temp file whose name starts with `.` (so qrexec ignores
    /// it), fsync, rename over the old file, fsync of the directory. A new
    /// file gets mode 0644; a replaced one keeps its mode.
    public func replace(_ name: String, in directory: String, with bytes: [UInt8]) throws(PolicyError) {
        let path = directory + "/" + name
        do {
            try StoreFile(path: path, newFileMode: 0o644).replace(with: bytes, expecting: nil)
        } catch let error as StoreError {
            throw PolicyError(.unreadable, error.message, file: path)
        } catch {
            throw PolicyError(.unreadable, "\(error)", file: path)
        }
    }

    private func failure(_ call: String, _ path: String) -> PolicyError {
        let code = errno
        return PolicyError(.unreadable, "\(call): \(String(cString: strerror(code))) (errno \(code))", file: path)
    }
}

/// Policy files held in memory, keyed by absolute path; directories are implied by the paths.
public struct MemoryPolicyFiles: PolicyFileSystem {
    public var files: [String: [UInt8]]

    public init(_ files: [String: String] = [:]) {
        self.files = files.mapValues { Array($0.utf8) }
    }

    public func kind(of path: String) -> PolicyEntryKind {
        if files[path] != nil { return .file }
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return files.keys.contains { $0.utf8.starts(with: prefix.utf8) } ? .directory : .missing
    }

    public func entries(of directory: String) throws(PolicyError) -> [String] {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        var names: Set<String> = []
        for path in files.keys where path.utf8.starts(with: prefix.utf8) {
            let rest = path.utf8.dropFirst(prefix.utf8.count)
            names.insert(String(decoding: rest.prefix(while: { $0 != UInt8(ascii: "/") }), as: UTF8.self))
        }
        return Array(names)
    }

    public func read(_ path: String, limit: Int) throws(PolicyError) -> [UInt8] {
        guard let bytes = files[path] else { throw PolicyError(.unreadable, "no such file", file: path) }
        guard bytes.count <= limit else { throw PolicyError.tooLarge(path, limit: limit) }
        return bytes
    }
}

extension PolicyError {
    /// A file over the size limit.
    static func tooLarge(_ path: String, limit: Int) -> PolicyError {
        PolicyError(.limit, "file is larger than \(limit) bytes", file: path, expected: "at most \(limit) bytes")
    }
}
