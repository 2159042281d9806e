import Glibc
import LQCommon
import QubesStore
import SystemLayer

/// The manifest of an exported shard, `manifest.json` in its folder
/// (docs/shards.md, "Carrying a shard to another machine").
public struct ShardManifest: Codable, Sendable, Hashable {
    /// One volume file: its path below the folder, its size and its sha256 (lowercase hex).
    public struct Volume: Codable, Sendable, Hashable {
        public var path: String
        public var size: Int64
        public var sha256: String

        public init(path: String, size: Int64, sha256: String) { (self.path, self.size, self.sha256) = (path, size, sha256) }
    }

    public static let fileName = "manifest.json"
    /// The largest manifest read.
    public static let maxSize = 16 << 20
    public var version = 1
    public var shard: String
    /// Pool name → its folder below the exported folder (`pools/<name>`).
    public var pools: [String: String]
    public var volumes: [Volume]

    public init(shard: String, pools: [String: String], volumes: [Volume]) {
        (self.shard, self.pools, self.volumes) = (shard, pools, volumes)
    }

    /// The folder an exported pool's volumes are kept in, relative to the exported folder.
    public static func folder(ofPool name: String) -> String { "pools/" + name }

    public func bytes() throws -> [UInt8] { try JSONValue(encoding: self).canonicalBytes() }

    /// The manifest in `bytes`, checked: version 1, every pool folder `pools/<name>`, every volume
    /// path below one of them, made of plain components (no `.`, `..` or empty one), listed once.
    /// - Throws: `ShardIssue` naming `file`, the field and the value.
    public static func parse(_ bytes: [UInt8], file: String) throws -> ShardManifest {
        let manifest: ShardManifest
        do {
            manifest = try JSONReader.parse(bytes, file: file).decode(ShardManifest.self)
        } catch {
            throw ShardIssue("not a shard manifest: \(error)", file: file)
        }
        guard manifest.version == 1 else { throw ShardIssue("unknown manifest version", file: file, field: "version", value: String(manifest.version)) }
        for (name, folder) in manifest.pools where folder != Self.folder(ofPool: name) || !ShardFile.isValidName(name) {
            throw ShardIssue("a pool's folder must be pools/<its name>", file: file, field: "pools", value: folder)
        }
        var seen = Set<String>()
        for volume in manifest.volumes {
            let parts = volume.path.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[0] == "pools", manifest.pools[String(parts[1])] != nil,
                parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") }),
                // A shard file among the volumes would join the shard when it is read.
                parts.last != Substring(ShardFolder.fileName), parts.last != Substring(ShardFolder.previousFileName),
                volume.size >= 0, volume.sha256.count == 64, volume.sha256.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                seen.insert(volume.path).inserted
            else { throw ShardIssue("not a volume path below a pool's folder, listed once", file: file, field: "volumes", value: volume.path) }
        }
        return manifest
    }
}

/// What export or import wrote.
public struct PortableReport: Sendable {
    /// The shard folder written.
    public var root: String
    public var manifest: ShardManifest
    /// Files in the folder read that the manifest does not list: not copied.
    public var ignored: [String] = []
    /// What attaching the imported shard to the main store would do (import only).
    public var merge: ShardMergeReport?

    public var json: JSONValue {
        let manifest: JSONValue = (try? JSONValue(encoding: self.manifest)) ?? .null
        let ignored: JSONValue = .array(self.ignored.map(JSONValue.string))
        return .object(["root": .string(root), "manifest": manifest, "ignored": ignored, "merge": merge?.json ?? .null])
    }
}

/// Export and import of shards between two machines (docs/shards.md, "Carrying a shard to another machine").
public enum ShardPortable {
    /// Writes the shard `name` of the folder `root` into the new folder `output`: one `domains.xml`
    /// whose pools' `dir_path` is `pools/<pool>` (relative to `output`), every file of each pool's
    /// folder copied there, and the manifest, written last.
    /// - Throws: `ShardIssue` naming the shard, pool or file that cannot be exported.
    public static func export(_ name: String, from root: String, to output: String) throws -> PortableReport {
        let shard = try ShardFolder(root: root).read().shard.get()
        guard shard.name == name else { throw ShardIssue("the folder holds another shard", file: root, field: "name", value: shard.name) }
        let files = SystemFileSystem()
        try requireEmpty(output)
        var pools: [Pool] = []
        var volumes: [ShardManifest.Volume] = []
        for pool in shard.pools {
            guard pool.driver == "file-reflink" || pool.driver == "file", let folder = pool[attribute: "dir_path"], folder.hasPrefix("/") else {
                throw ShardIssue("only file-reflink and file pools with a dir_path can be exported", file: root, field: "pool", value: pool.name)
            }
            let relative = ShardManifest.folder(ofPool: pool.name)
            for (file, type) in try entries(below: folder) {
                guard type == .regular else { throw ShardIssue("neither a file nor a folder: not exported", file: folder + "/" + file.joined(separator: "/")) }
                let path = relative + "/" + file.joined(separator: "/")
                volumes.append(try copy(from: folder, file, to: output + "/" + path, listedAs: path, expecting: nil))
            }
            try files.makeDirectories(output + "/" + relative)
            pools.append(rewritten(pool, dirPath: relative))
        }
        let file = ShardFile(name: name, pools: pools, domains: shard.domains.map(\.domain))
        let manifest = ShardManifest(shard: name, pools: Dictionary(uniqueKeysWithValues: pools.map { ($0.name, $0[attribute: "dir_path"] ?? "") }), volumes: volumes)
        try write(try file.bytes(), to: output + "/" + ShardFolder.fileName)
        try write(try manifest.bytes(), to: output + "/" + ShardManifest.fileName)
        return PortableReport(root: output, manifest: manifest)
    }

    /// `pool` with `dir_path` set to `dirPath`.
    static func rewritten(_ pool: Pool, dirPath: String) -> Pool {
        var pool = pool
        pool.attributes = pool.attributes.map { $0.name == "dir_path" ? XMLNode.Attribute(name: "dir_path", value: dirPath) : $0 }
        return pool
    }

    /// Throws unless nothing, or an empty folder, is at `path`.
    static func requireEmpty(_ path: String) throws {
        let files = SystemFileSystem()
        guard let info = try files.info(of: path) else { return }
        guard info.type == .directory, try files.entries(of: path).isEmpty else {
            throw ShardIssue("must be a new or empty folder", file: path)
        }
    }

    /// Every entry below `folder` that is not a folder (no symlink followed), as path components with its type, sorted.
    static func entries(below folder: String, prefix: [String] = []) throws -> [(components: [String], type: FileType)] {
        let files = SystemFileSystem()
        let here = ([folder] + prefix).joined(separator: "/")
        guard try files.info(of: here, followSymlink: prefix.isEmpty) != nil else { return [] }
        var found: [(components: [String], type: FileType)] = []
        for name in try files.entries(of: here).map({ String(decoding: $0, as: UTF8.self) }).sorted() {
            let type = try files.info(of: here + "/" + name)?.type ?? .unknown
            if type == .directory {
                found += try entries(below: folder, prefix: prefix + [name])
            } else {
                found.append((prefix + [name], type))
            }
        }
        return found
    }

    /// Copies the file `components` below `root` (no symlink followed) to the new file `destination`
    /// (0600, folders made), with its size and sha256; when `expecting`, a different size or digest
    /// removes the copy and throws.
    static func copy(
        from root: String, _ components: [String], to destination: String, listedAs path: String, expecting: ShardManifest.Volume?
    ) throws -> ShardManifest.Volume {
        let files = SystemFileSystem()
        let host = HostSystem()
        let source: Int32
        do {
            source = try host.openBeneath(root, components.map { Array($0.utf8) })
        } catch {
            throw ShardIssue("cannot be read as a file without following a symlink: \(error)", file: ([root] + components).joined(separator: "/"))
        }
        defer { host.close(source) }
        try files.makeDirectories(ShardBootUnits.folder(of: destination))
        let target = try files.open(destination, flags: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o600)
        var digest = StreamingSHA256()
        let size: Int64
        do {
            defer { files.close(target) }
            size = try host.copy(source, to: target, each: { digest.update($0) })
            try files.fsync(target)
        }
        let volume = ShardManifest.Volume(path: path, size: size, sha256: digest.hex())
        if let expecting, expecting != volume {
            try? files.unlink(destination)
            throw ShardIssue("the size or sha256 differs from the manifest's", file: ([root] + components).joined(separator: "/"), field: "sha256", value: volume.sha256)
        }
        return volume
    }

    /// Writes `bytes` as the new file `path` (0644), atomically.
    static func write(_ bytes: [UInt8], to path: String) throws {
        let files = SystemFileSystem()
        try files.makeDirectories(ShardBootUnits.folder(of: path))
        _ = try files.replaceFile(path, with: bytes, attributes: FileAttributes(permissions: 0o644, owner: geteuid(), group: getegid()))
    }
}
