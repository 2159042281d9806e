import SystemLayer

/// One entry of a rules tree (`template.*`, `checksum.*`, `whitelist.*`), read without following symlinks.
/// File contents are not kept; `RuleTree.content(of:)` reads them when needed.
public struct RuleEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case file
        case directory
        case symlink(target: Name)
        case socket
        /// A FIFO or device: not supported in trees (docs/boot-guard.md, "Trees").
        case unsupported(FileType)
    }

    public var kind: Kind
    /// Owner, group and mode the `/rw` entry must have.
    public var info: FileInfo
    public var children: [Name: RuleEntry] = [:]

    public var isDirectory: Bool { kind == .directory }

    /// The entry at `path` below this one, only through directories.
    func lookup(_ components: ArraySlice<Name>) -> RuleEntry? {
        guard let first = components.first else { return self }
        guard isDirectory, let child = children[first] else { return nil }
        return child.lookup(components.dropFirst())
    }
}

/// One rules tree, kept open while the guard runs.
public struct RuleTree: Sendable {
    /// `template.core-keys`, `checksum.ALL`, …
    public var name: String
    public var top: RuleEntry
    let descriptor: Descriptor

    public func lookup(_ path: RelativePath) -> RuleEntry? { top.lookup(path.components[...]) }

    /// The bytes of the file at `path` in this tree, at most `limit` bytes.
    func content(of path: RelativePath, limit: Int, system: any SystemCalls) throws(ProtectError) -> [UInt8] {
        var directories: [Descriptor] = []
        defer { directories.forEach(system.close) }
        var current = descriptor
        do {
            for component in path.components.dropLast() {
                current = try system.openDirectory(current, component, followSymlink: false)
                directories.append(current)
            }
            let fd = try system.openFile(current, path.name)
            defer { system.close(fd) }
            let bytes = try system.read(fd, limit: limit)
            guard bytes.count <= limit else {
                throw ProtectError(.rules, "larger than \(limit) bytes", path: "\(name)/\(path)", rule: name)
            }
            return bytes
        } catch let error as SystemError {
            throw ProtectError(.rules, "cannot read: \(error)", path: "\(name)/\(path)", rule: name)
        } catch let error as ProtectError {
            throw error
        } catch {
            throw ProtectError(.rules, "\(error)", path: "\(name)/\(path)", rule: name)
        }
    }
}

/// The trees for one qube, each category in precedence order: the qube's own tree, then `ALL`.
public struct Rules: Sendable {
    public var templates: [RuleTree] = []
    public var checksums: [RuleTree] = []
    public var whitelists: [RuleTree] = []

    /// Every open tree, for closing.
    var all: [RuleTree] { templates + checksums + whitelists }

    /// Largest rules tree entry count, a guard against a runaway tree (a loop of bind mounts).
    static let maxEntries = 1_000_000

    /// Loads `template|checksum|whitelist.<qube>` and `….ALL` from the rules folder. Tree roots may be
    /// symlinks (`template.debian-core1 → template.debian-core`); nothing inside a tree is followed.
    static func load(from rules: Descriptor, qube: String, system: any SystemCalls) throws(ProtectError) -> Rules {
        var result = Rules()
        var budget = maxEntries
        for category in ["template", "checksum", "whitelist"] {
            var trees: [RuleTree] = []
            for owner in [qube, "ALL"] {
                let name = "\(category).\(owner)"
                let fd: Descriptor
                do {
                    fd = try system.openDirectory(rules, Array(name.utf8), followSymlink: true)
                } catch {
                    if error.isNotFound { continue }
                    result.close(system: system)
                    throw ProtectError(.rules, "cannot open tree: \(error)", path: name, rule: name)
                }
                do {
                    let info = try system.status(fd)
                    var top = RuleEntry(kind: .directory, info: info)
                    try scan(fd, into: &top, path: RelativePath(), tree: name, budget: &budget, system: system)
                    trees.append(RuleTree(name: name, top: top, descriptor: fd))
                } catch let error as ProtectError {
                    system.close(fd)
                    result.close(system: system)
                    throw error
                } catch {
                    system.close(fd)
                    result.close(system: system)
                    throw ProtectError(.rules, "cannot read tree: \(error)", path: name, rule: name)
                }
            }
            switch category {
            case "template": result.templates = trees
            case "checksum": result.checksums = trees
            default: result.whitelists = trees
            }
        }
        return result
    }

    private static func scan(
        _ fd: Descriptor, into entry: inout RuleEntry, path: RelativePath, tree: String, budget: inout Int, system: any SystemCalls
    ) throws {
        for name in try system.entries(fd) {
            budget -= 1
            guard budget > 0 else { throw ProtectError(.rules, "more than \(maxEntries) entries", path: tree, rule: tree) }
            guard let info = try system.status(fd, name) else { continue }
            var child: RuleEntry
            switch info.type {
            case .regular: child = RuleEntry(kind: .file, info: info)
            case .directory:
                child = RuleEntry(kind: .directory, info: info)
                let childFD = try system.openDirectory(fd, name, followSymlink: false)
                defer { system.close(childFD) }
                try scan(childFD, into: &child, path: path.appending(name), tree: tree, budget: &budget, system: system)
            case .symlink: child = RuleEntry(kind: .symlink(target: try system.readLink(fd, name)), info: info)
            case .socket: child = RuleEntry(kind: .socket, info: info)
            default: child = RuleEntry(kind: .unsupported(info.type), info: info)
            }
            entry.children[name] = child
        }
    }

    func close(system: any SystemCalls) {
        for tree in all { system.close(tree.descriptor) }
    }

    /// The first tree of `trees` that has `path`, and its entry.
    static func first(_ trees: [RuleTree], _ path: RelativePath) -> (tree: RuleTree, entry: RuleEntry)? {
        for tree in trees {
            if let entry = tree.lookup(path) { return (tree, entry) }
        }
        return nil
    }

    /// The whitelist marker `name` (`.any_file`, `.any_dir`) in folder `folder`, as `whitelist.X/folder/name`.
    func marker(_ folder: RelativePath, _ name: String) -> String? {
        let path = folder.appending(Array(name.utf8))
        return Self.first(whitelists, path).map { "\($0.tree.name)/\(path)" }
    }
}
