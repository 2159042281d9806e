import LQCommon
import SystemLayer

/// A dom0 folder laid into a qube, the manifest's `files.<role>` (docs/liteqube.md, "Customising"): into
/// the template's root for `core`, else into the guard's `template.<qube>` tree, which the boot guard
/// deploys to that qube's private volume. Owners and modes come from a permissions list, as in the
/// original's `custom/` overlay: every entry of the folder is listed, and nothing else.
public struct QubeFiles: Sendable, Hashable {
    /// The role whose qube gets the files.
    public var role: Role
    /// The entries, with paths from the tree's root (`/etc/x`) and files as copies from dom0, parents first.
    public var entries: [TemplateEntry]

    public init(role: Role, entries: [TemplateEntry]) {
        self.role = role
        self.entries = entries
    }

    public static let maxEntries = 10_000
    public static let maxFileSize = 64 << 20

    /// Reads `folder` and its permissions list `permissions`, lines `MODE OWNER GROUP ./PATH`: MODE as `ls -l`
    /// shows it (`-rw-r--r--`, `drwxr-x---`, `lrwxrwxrwx`), OWNER the user and GROUP its group of the same
    /// name, PATH relative to the folder; empty lines and `#` comments are skipped.
    /// - Throws: `ProvisioningError` (`invalidFiles`) naming the list and line, or the entry: an entry listed
    ///   but absent or of another type, one present but not listed, a path that leaves the folder.
    public static func read(role: Role, folder: String, permissions: String) throws -> QubeFiles {
        let files = SystemFileSystem()
        let text: [UInt8]
        do throws(SystemError) {
            text = try files.contents(of: permissions, limit: 4 << 20)
        } catch {
            throw ProvisioningError(.invalidFiles, "cannot read the permissions list", path: permissions, cause: error)
        }
        var listed: [String: (type: Character, owner: String, mode: Int)] = [:]
        var order: [String] = []
        for (index, line) in String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard !fields.isEmpty, !fields[0].hasPrefix("#") else { continue }
            func refuse(_ message: String) -> ProvisioningError {
                ProvisioningError(.invalidFiles, "line \(index + 1): \(message)", path: permissions)
            }
            guard fields.count == 4 else { throw refuse("expected MODE OWNER GROUP ./PATH (a path without spaces), not '\(line)'") }
            guard let (type, mode) = parseMode(fields[0]) else { throw refuse("'\(fields[0])' is not a mode as ls -l shows it (-rw-r--r--)") }
            guard fields[1] == fields[2], ownerIsValid(fields[1]) else {
                throw refuse("owner '\(fields[1])' and group '\(fields[2])' must be one user name and its own group")
            }
            guard let path = relativePath(fields[3]) else { throw refuse("'\(fields[3])' is not a path inside the folder (./a/b, no '..')") }
            guard listed.updateValue((type, fields[1], mode), forKey: path) == nil else { throw refuse("\(fields[3]) is listed twice") }
            order.append(path)
        }
        let found = try walk(folder, files: files)
        var entries: [TemplateEntry] = []
        for path in order.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let wanted = listed[path]!
            guard let info = found[path] else { throw ProvisioningError(.invalidFiles, "listed in \(permissions) but absent", path: folder + path) }
            let kind: TemplateEntry.Kind
            switch (wanted.type, info.type) {
            case ("-", .regular):
                guard info.size <= maxFileSize, let bytes = try? files.contents(of: folder + path, limit: maxFileSize) else {
                    throw ProvisioningError(.invalidFiles, "unreadable, or over \(maxFileSize) bytes", path: folder + path)
                }
                kind = .binary(source: folder + path, sha256: sha256Hex(bytes))
            case ("d", .directory): kind = .directory
            case ("l", .symlink):
                guard let target = try? files.linkTarget(of: folder + path) else { throw ProvisioningError(.invalidFiles, "unreadable link", path: folder + path) }
                kind = .symlink(target: target)
            default: throw ProvisioningError(.invalidFiles, "is not what \(permissions) lists it as ('\(wanted.type)')", path: folder + path)
            }
            entries.append(TemplateEntry(path: path, kind: kind, owner: wanted.owner, mode: wanted.mode))
        }
        if let unlisted = found.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).first(where: { listed[$0] == nil }) {
            throw ProvisioningError(.invalidFiles, "not in the permissions list \(permissions)", path: folder + unlisted)
        }
        return QubeFiles(role: role, entries: entries)
    }

    /// Every entry below `folder` by its path from it (`/a/b`), links not followed.
    private static func walk(_ folder: String, files: SystemFileSystem) throws -> [String: FileInfo] {
        var found: [String: FileInfo] = [:]
        var pending = [""]
        while let relative = pending.popLast() {
            let names: [String]
            do throws(SystemError) {
                names = try files.entries(of: folder + relative).map { String(decoding: $0, as: UTF8.self) }
            } catch {
                throw ProvisioningError(.invalidFiles, "cannot list the folder", path: folder + relative, cause: error)
            }
            for name in names {
                let path = relative + "/" + name
                guard found.count < maxEntries else { throw ProvisioningError(.invalidFiles, "more than \(maxEntries) entries", path: folder) }
                guard let info = try? files.info(of: folder + path), [.regular, .directory, .symlink].contains(info.type) else {
                    throw ProvisioningError(.invalidFiles, "neither a file, a folder nor a link", path: folder + path)
                }
                found[path] = info
                if info.type == .directory { pending.append(path) }
            }
        }
        return found
    }

    /// `-rw-r--r--` → ("-", 0o644); setuid, setgid and sticky as `s`/`S`, `t`/`T`.
    public static func parseMode(_ text: String) -> (Character, Int)? {
        let characters = Array(text)
        guard characters.count == 10, "-dl".contains(characters[0]) else { return nil }
        var mode = 0
        for (index, character) in characters.dropFirst().enumerated() {
            let bit = 1 << (8 - index)
            let special = index == 2 ? 0o4000 : index == 5 ? 0o2000 : index == 8 ? 0o1000 : 0
            switch (index % 3, character) {
            case (_, "-"): break
            case (0, "r"), (1, "w"), (2, "x"): mode |= bit
            case (2, "s") where special != 0o1000, (2, "t") where special == 0o1000: mode |= bit | special
            case (2, "S") where special != 0o1000, (2, "T") where special == 0o1000: mode |= special
            default: return nil
            }
        }
        return (characters[0], mode)
    }

    /// A user name as Debian's adduser allows by default.
    private static func ownerIsValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 32, ("a"..."z").contains(first) || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_-".unicodeScalars.contains($0) }
    }

    /// `./a/b` → `/a/b`; `nil` for a path that is empty, absolute, or has `.`, `..` or empty components.
    private static func relativePath(_ text: String) -> String? {
        guard text.hasPrefix("./") else { return nil }
        let parts = text.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else { return nil }
        return "/" + parts.joined(separator: "/")
    }
}

extension Overlay {
    /// The manifest's `files:` trees, after everything Liteqube lays out: a folder Liteqube lays out too
    /// is left as Liteqube has it when the tree gives it the same owner and mode; any other path Liteqube
    /// lays out is refused.
    mutating func customFiles(_ trees: [QubeFiles]) throws {
        var laid: [String: TemplateEntry] = [:]
        for case .entry(let entry) in steps { laid[entry.path] = entry }
        let included = Set(manifest.components.flatMap(\.roles).map(\.role))
        for tree in trees {
            guard included.contains(tree.role) else {
                throw ProvisioningError(.invalidFiles, "files.\(tree.role): no component of the manifest has this qube")
            }
            let root = tree.role == .core ? "" : render("\(Self.protect)/template.{{\(tree.role.rawValue)}}")
            if !root.isEmpty, laid[root] == nil { directory(root) }
            for var entry in tree.entries {
                entry.path = root + entry.path
                if let ours = laid[entry.path] {
                    guard ours.kind == .directory, entry.kind == .directory, ours.owner == entry.owner, ours.mode == entry.mode else {
                        throw ProvisioningError(.invalidFiles, "files.\(tree.role): Liteqube lays out this path itself; leave it out", path: entry.path)
                    }
                    continue
                }
                self.entry(entry)
            }
        }
    }
}
