import QubesStore
import SystemLayer

/// The only place Shards touches the file system: finding, reading and
/// atomically replacing the `domains.xml` files of a shard root.
public struct ShardFolder: Sendable {
    /// The shard file name.
    public static let fileName = "domains.xml"
    /// The name the previous version of a shard file is kept under.
    public static let previousFileName = "domains.xml.prev"
    /// Deepest folder nesting searched below a shard root.
    public static let maxDepth = 8
    /// Most shard files one shard may have.
    public static let maxFiles = 256

    public let root: String
    public let fileSystem: any FileSystem

    public init(root: String, fileSystem: any FileSystem = SystemFileSystem()) {
        self.root = root
        self.fileSystem = fileSystem
    }

    /// The path of the root file.
    public var rootFile: String { Self.join(root, Self.fileName) }

    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// Paths of every `domains.xml` below the root (symbolic links are not
    /// followed), the root's own first, then in code-point order.
    public func filePaths() throws -> [String] {
        let found = try Self.files(under: root, limit: Self.maxFiles) { $0 == Self.fileName }
        return found.sorted { lhs, rhs in
            if lhs == rootFile || rhs == rootFile { return lhs == rootFile && rhs != rootFile }
            return ExactString(lhs) < ExactString(rhs)
        }
    }

    /// Regular files below `folder` whose name `matches`, at most `maxDepth`
    /// folders deep, without following symbolic links.
    /// - Throws: `ShardIssue` when a folder cannot be read or more than `limit` files match.
    public static func files(under folder: String, limit: Int, matching matches: (String) -> Bool) throws -> [String] {
        var found: [String] = []
        try search(folder, depth: 0, limit: limit, matches: matches, into: &found)
        return found
    }

    private static func search(
        _ folder: String, depth: Int, limit: Int, matches: (String) -> Bool, into found: inout [String]
    ) throws {
        let files = SystemFileSystem()
        let names: [Name]
        do throws(SystemError) {
            names = try files.entries(of: folder)
        } catch {
            throw ShardIssue("cannot read the folder: \(error.reason)", file: folder)
        }
        var subfolders: [String] = []
        for name in names.map({ String(decoding: $0, as: UTF8.self) }) {
            let path = join(folder, name)
            guard let info = try? files.info(of: path) else { continue }
            if info.type == .directory {
                subfolders.append(path)
            } else if info.type == .regular && matches(name) {
                guard found.count < limit else { throw ShardIssue("more than \(limit) files", file: folder) }
                found.append(path)
            }
        }
        guard depth < maxDepth else { return }
        for subfolder in subfolders.sorted() {
            try search(subfolder, depth: depth + 1, limit: limit, matches: matches, into: &found)
        }
    }

    /// Most files `scan` reads, and the largest it reads.
    public static let maxScannedFiles = 100_000
    public static let maxScannedSize = 64 << 20

    /// Every regular file below `folders` (at most `maxScannedFiles`), for the
    /// audit; files larger than `maxScannedSize` or unreadable are listed in `skipped`.
    public static func scan(_ folders: [String]) throws -> (files: [(path: String, bytes: [UInt8])], skipped: [String]) {
        var files: [(path: String, bytes: [UInt8])] = []
        var skipped: [String] = []
        for folder in folders {
            for path in try Self.files(under: folder, limit: maxScannedFiles, matching: { _ in true }) {
                guard let size = try? SystemFileSystem().stat(path).size, size <= maxScannedSize,
                    let bytes = try? ShardFolder(root: folder).readFile(path)
                else {
                    skipped.append(path)
                    continue
                }
                files.append((path, bytes))
            }
        }
        return (files, skipped)
    }

    /// The bytes of the file at `path`, read under a shared lock.
    public func readFile(_ path: String) throws -> [UInt8] {
        do {
            return try StoreFile(path: path, fileSystem: fileSystem).read().bytes
        } catch let error as StoreError {
            throw ShardIssue(error, file: path)
        }
    }

    /// Reads and parses every shard file; any failure fails the whole shard.
    public func read() -> ShardSource {
        do {
            let paths = try filePaths()
            guard !paths.isEmpty else { throw ShardIssue("no \(Self.fileName) in the shard folder", file: root) }
            let documents = try paths.map { path in
                let bytes = try readFile(path)
                return ShardDocument(path: path, file: try ShardFile.parse(bytes, file: path), bytes: bytes)
            }
            return ShardSource(root: root, shard: .success(try Shard(root: root, documents: documents).validated()))
        } catch let issue as ShardIssue {
            return ShardSource(root: root, shard: .failure(issue))
        } catch {
            return ShardSource(root: root, shard: .failure(ShardIssue("\(error)", file: root)))
        }
    }

    /// Replaces the shard file at `path` atomically, keeping what it held as
    /// `domains.xml.prev` beside it (itself written atomically first).
    public func replace(_ path: String, with bytes: [UInt8], previous: [UInt8]?) throws {
        do {
            if let previous {
                let folder = path.hasSuffix(Self.fileName) ? String(path.dropLast(Self.fileName.count)) : root
                try StoreFile(path: Self.join(folder, Self.previousFileName), fileSystem: fileSystem)
                    .replace(with: previous, expecting: nil)
            }
            try StoreFile(path: path, fileSystem: fileSystem).replace(with: bytes, expecting: nil)
        } catch let error as StoreError {
            throw ShardIssue(error, file: path)
        }
    }

    /// Writes every changed output (keeping `domains.xml.prev`), then `last`
    /// (the main store) if given, each atomically. Returns the paths written.
    /// - Throws: `ShardIssue` naming the file that failed and the files already
    ///   written; every file is then either its old or its new version.
    @discardableResult
    public static func write(
        _ outputs: [SplitOutput], then last: (file: StoreFile, bytes: [UInt8])? = nil,
        fileSystem: any FileSystem = SystemFileSystem()
    ) throws -> [String] {
        var written: [String] = []
        do {
            for output in outputs where output.changed {
                try ShardFolder(root: output.path, fileSystem: fileSystem)
                    .replace(output.path, with: output.bytes, previous: output.previous)
                written.append(output.path)
            }
            if let last {
                do {
                    try last.file.replace(with: last.bytes, expecting: nil)
                } catch let error as StoreError {
                    throw ShardIssue(error, file: last.file.path)
                }
                written.append(last.file.path)
            }
        } catch var issue as ShardIssue {
            let done = written.isEmpty ? "nothing" : written.joined(separator: ", ")
            issue.message += "; already written: \(done); every other file is unchanged"
            throw issue
        }
        return written
    }
}
