import QubesStore
import SystemLayer

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

    private var files: SystemFileSystem { SystemFileSystem() }

    public func kind(of path: String) -> PolicyEntryKind {
        guard let info = try? files.info(of: path, followSymlink: true) else { return .missing }
        switch info.type {
        case .regular: return .file
        case .directory: return .directory
        default: return .other
        }
    }

    public func entries(of directory: String) throws(PolicyError) -> [String] {
        do throws(SystemError) {
            return try files.entries(of: directory).map { String(decoding: $0, as: UTF8.self) }
        } catch {
            throw failure("open directory", error, directory)
        }
    }

    public func read(_ path: String, limit: Int) throws(PolicyError) -> [UInt8] {
        let bytes: [UInt8]
        do throws(SystemError) {
            bytes = try files.contents(of: path, limit: limit)
        } catch {
            throw failure(error.call, error, path)
        }
        guard bytes.count <= limit else { throw PolicyError.tooLarge(path, limit: limit) }
        return bytes
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

    /// "<call>: <strerror> (errno N)", for the file at `path`.
    private func failure(_ call: String, _ error: SystemError, _ path: String) -> PolicyError {
        PolicyError(.unreadable, "\(call): \(error.reason) (errno \(error.code))", file: path)
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
