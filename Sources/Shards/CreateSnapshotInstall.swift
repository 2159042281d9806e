import Glibc
import SystemLayer

/// Puts `lq` in place of qubesd's `create-snapshot` helper and back
/// (docs/shards.md, "create-snapshot"): the helper becomes a link to `lq`,
/// which acts as `lq shard create-snapshot` when called by that name, and
/// Qubes' own helper is kept beside it until `uninstall` puts it back.
public struct CreateSnapshotInstall: Sendable {
    /// The helper qubesd's file driver runs, on the installed system.
    public static let helperPath = "/usr/lib/qubes/create-snapshot"
    /// Where Qubes' own helper is kept while lq's is in place.
    public static let savedPath = helperPath + ".qubes"

    /// The folder the system is installed in (`/` for dom0 itself).
    public var root: String
    /// The `lq` program the link leads to.
    public var lq: String
    let files = SystemFileSystem()

    public init(root: String = "/", lq: String = "/usr/bin/lq") { (self.root, self.lq) = (root, lq) }

    var helper: String { ShardBootUnits(root: root).place(Self.helperPath) }
    var saved: String { ShardBootUnits(root: root).place(Self.savedPath) }

    /// Whether lq's helper is in place.
    public func installed() throws -> Bool {
        try files.info(of: helper)?.type == .symlink && files.linkTarget(of: helper) == lq
    }

    /// Keeps Qubes' helper as `create-snapshot.qubes` (same bytes and mode), then replaces the helper
    /// with a link to `lq` in one rename, so the helper is never missing; returns the paths written
    /// (none when lq's is in place already).
    /// - Throws: `ShardIssue` when the helper is not a file, or a kept helper is there already.
    public func install() throws -> [String] {
        if try installed() { return [] }
        guard let info = try files.info(of: helper), info.type == .regular else {
            throw ShardIssue("not Qubes' helper (a file); left alone", file: helper)
        }
        guard try files.info(of: saved) == nil else { throw ShardIssue("a kept helper is there already; left alone", file: saved) }
        let bytes = try files.contents(of: helper)
        _ = try files.replaceFile(saved, with: bytes, attributes: FileAttributes(permissions: info.permissions, owner: info.owner, group: info.group))
        let temporary = ShardBootUnits.folder(of: helper) + "/.create-snapshot.lq-\(getpid())"
        try files.makeSymlink(temporary, to: lq)
        do {
            try files.rename(temporary, helper)
        } catch {
            try? files.unlink(temporary)
            throw error
        }
        return [saved, helper]
    }

    /// Puts Qubes' kept helper back in one rename; returns the paths changed (none when lq's is not in place).
    /// - Throws: `ShardIssue` when lq's helper is in place but the kept one is missing.
    public func uninstall() throws -> [String] {
        guard try installed() else { return [] }
        guard try files.info(of: saved)?.type == .regular else {
            throw ShardIssue("Qubes' helper is not kept here; reinstall qubes-core-dom0 to get it back", file: saved)
        }
        try files.rename(saved, helper)
        return [helper]
    }
}
