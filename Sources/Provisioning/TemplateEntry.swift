import LQCommon
import SystemLayer

/// One entry Liteqube puts into its template's root file system: a file, a
/// directory or a symlink, with the owner (user and group of that name) and
/// mode it must have. The overlay is data (docs/liteqube.md, "Template overlay"): kind, owner,
/// mode and content for every entry, never archive metadata.
public struct TemplateEntry: Sendable, Hashable, Codable {
    public enum Kind: Sendable, Hashable, Codable {
        /// A text file with this content.
        case file(String)
        /// A file copied from dom0 (the static `lq` binaries), known by its sha256.
        case binary(source: String, sha256: String)
        case directory
        case symlink(target: String)
    }

    /// Absolute path inside the template.
    public var path: String
    public var kind: Kind
    /// User and group name (`root`, `user`, `debian-tor`).
    public var owner: String
    public var mode: Int

    public init(path: String, kind: Kind, owner: String = "root", mode: Int) {
        self.path = path
        self.kind = kind
        self.owner = owner
        self.mode = mode
    }

    /// What a template holding exactly this entry shows for its path.
    public var expected: FoundEntry {
        switch kind {
        case .file(let content): FoundEntry(kind: .file, owner: owner, mode: mode, detail: sha256Hex(Array(content.utf8)))
        case .binary(_, let sha256): FoundEntry(kind: .file, owner: owner, mode: mode, detail: sha256)
        case .directory: FoundEntry(kind: .directory, owner: owner, mode: mode, detail: "")
        case .symlink(let target): FoundEntry(kind: .symlink, owner: "root", mode: 0o777, detail: target)
        }
    }
}

/// What is at a path in a qube, as an executor reports it.
public struct FoundEntry: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case file, directory, symlink, other
    }

    public var kind: Kind
    public var owner: String
    public var mode: Int
    /// The sha256 (hex) of a file, the target of a symlink, else "".
    public var detail: String

    public init(kind: Kind, owner: String, mode: Int, detail: String) {
        self.kind = kind
        self.owner = owner
        self.mode = mode
        self.detail = detail
    }

    /// Whether a path holding `self` already is what `wanted` asks for
    /// (symlinks: only the target counts).
    func satisfies(_ wanted: FoundEntry) -> Bool {
        kind == wanted.kind && detail == wanted.detail && (kind == .symlink || (owner == wanted.owner && mode == wanted.mode))
    }
}

/// What an executor writes at a path.
public enum Placement: Sendable, Hashable {
    case file([UInt8])
    case directory
    case symlink(target: String)
}
