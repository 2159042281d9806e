import Foundation
import SystemLayer

/// The dom0 unit that attaches the shards whose volumes are present before
/// qubesd starts and splits them after it stops (docs/shards.md, "Boot and
/// shutdown"), with the list of volume paths it reads.
public struct ShardBootUnits: Sendable {
    /// The unit's name; its template is `Resources/lq-shards.service`.
    public static let unitName = "lq-shards.service"
    /// Where the unit is installed, on the system it is for.
    public static let unitPath = "/etc/systemd/system/" + unitName
    /// The link that enables it (`WantedBy=qubesd.service`).
    public static let wantsLink = "/etc/systemd/system/qubesd.service.wants/" + unitName
    /// The volume list: shard folders as shell patterns, one a line.
    public static let volumeListPath = "/etc/lq/shard-volumes"
    static let volumeListHeader = "# Written by lq shard install-units: shard folders (shell patterns), one a line; "
        + "what is not there at boot is skipped.\n"

    /// The folder the system is installed in (`/` for dom0 itself).
    public var root: String
    /// The `lq` program the unit runs.
    public var lq: String
    let files = SystemFileSystem()

    public init(root: String = "/", lq: String = "/usr/bin/lq") { (self.root, self.lq) = (root, lq) }

    /// `path` (absolute, on the installed system) below `root`.
    public func place(_ path: String) -> String { root == "/" ? path : (root.hasSuffix("/") ? String(root.dropLast()) : root) + path }

    /// The unit's text: ordered before qubesd and after the mount units of every folder above the volumes.
    /// - Throws: `ShardIssue` naming a volume or the program that cannot be written into a unit.
    public func unitText(volumes: [String]) throws -> String {
        guard lq.hasPrefix("/"), lq.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || "0123456789/._+-".unicodeScalars.contains($0)) })
        else { throw ShardIssue("the program must be an absolute path of letters, digits and /._+-", field: "lq", value: lq) }
        var mounts: [String] = []
        for volume in try Self.validated(volumes) {
            for unit in Self.mountUnits(above: volume) where !mounts.contains(unit) { mounts.append(unit) }
        }
        let template = TemplateTexts.files[Self.unitName] ?? ""
        return template.replacingOccurrences(of: "@MOUNTS@", with: mounts.joined(separator: " "))
            .replacingOccurrences(of: "@LQ@", with: lq).replacingOccurrences(of: "@VOLUME_LIST@", with: Self.volumeListPath)
    }

    /// The volume list's text.
    public static func volumeListText(_ volumes: [String]) throws -> String {
        volumeListHeader + (try validated(volumes)).map { $0 + "\n" }.joined()
    }

    /// The patterns in a volume list (blank lines and `#` comments skipped).
    /// - Throws: `ShardIssue` naming `file` and the line that is not an absolute path.
    public static func parseVolumeList(_ bytes: [UInt8], file: String) throws -> [String] {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        let patterns = lines.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        for pattern in patterns where !pattern.hasPrefix("/") {
            throw ShardIssue("a volume must be an absolute path", file: file, field: "volume", value: pattern)
        }
        return patterns
    }

    /// The mount units of the folders above `pattern` up to its first component with a pattern
    /// character, as systemd names them (`systemd-escape --path --suffix=mount`).
    public static func mountUnits(above pattern: String) -> [String] {
        var units: [String] = []
        var prefix = ""
        for component in pattern.split(separator: "/") {
            if component.contains(where: { "*?[".contains($0) }) { break }
            prefix += "/" + component
            units.append(escapedPath(prefix) + ".mount")
        }
        return units
    }

    /// `path` escaped as systemd names units after paths (`systemd-escape --path`): slashes at the ends
    /// dropped, the others `-`, every byte but ASCII letters, digits, `:`, `_` and a `.` not first written `\xNN`.
    public static func escapedPath(_ path: String) -> String {
        let trimmed = path.split(separator: "/").joined(separator: "/")
        guard !trimmed.isEmpty else { return "-" }
        var out = ""
        for (index, byte) in trimmed.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "/"): out += "-"
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: ":"), UInt8(ascii: "_"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: ".") where index > 0: out += "."
            default: out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }

    /// Writes the unit, the volume list and the link that enables the unit, each atomically; returns
    /// the paths written. Refuses (before writing anything) a unit or link there that is not lq's.
    public func install(volumes: [String]) throws -> [String] {
        guard !volumes.isEmpty else { throw ShardIssue("give at least one volume", field: "volume") }
        let unit = try unitText(volumes: volumes)
        let list = try Self.volumeListText(volumes)
        let (unitFile, listFile, link) = (place(Self.unitPath), place(Self.volumeListPath), place(Self.wantsLink))
        try refuseForeign(unitFile, header: Self.unitHeader)
        try refuseForeign(listFile, header: Self.volumeListHeader)
        let linked = try linksToUnit(link)
        for (path, text) in [(unitFile, unit), (listFile, list)] {
            try files.makeDirectories(Self.folder(of: path))
            _ = try files.replaceFile(path, with: Array(text.utf8), attributes: FileAttributes(permissions: 0o644, owner: geteuid(), group: getegid()))
        }
        if !linked {
            try files.makeDirectories(Self.folder(of: link))
            try files.makeSymlink(link, to: Self.unitPath)
        }
        return [unitFile, listFile, link]
    }

    /// Removes what `install` wrote (what is not there is skipped); returns the paths removed. Refuses
    /// (before removing anything) a file or link there that is not lq's.
    public func uninstall() throws -> [String] {
        let (unitFile, listFile, link) = (place(Self.unitPath), place(Self.volumeListPath), place(Self.wantsLink))
        try refuseForeign(unitFile, header: Self.unitHeader)
        try refuseForeign(listFile, header: Self.volumeListHeader)
        var removed: [String] = []
        if try linksToUnit(link) { removed.append(link) }
        for path in [unitFile, listFile] where try files.info(of: path) != nil { removed.append(path) }
        for path in removed { try files.unlink(path) }
        return removed
    }

    static var unitHeader: String { String((TemplateTexts.files[unitName] ?? "").prefix { $0 != "\n" }) + "\n" }

    static func folder(of path: String) -> String { String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }

    static func validated(_ volumes: [String]) throws -> [String] {
        for volume in volumes {
            let components = volume.split(separator: "/", omittingEmptySubsequences: false)
            guard volume.hasPrefix("/"), !components.contains(".."), volume.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
            else { throw ShardIssue("a volume must be an absolute path without .. or control characters", field: "volume", value: volume) }
        }
        return volumes
    }

    /// Throws when a file is at `path` that does not start with `header`.
    func refuseForeign(_ path: String, header: String) throws {
        guard try files.info(of: path) != nil else { return }
        guard try files.contents(of: path, limit: 1 << 16).starts(with: Array(header.utf8)) else {
            throw ShardIssue("not written by lq shard install-units; left alone", file: path)
        }
    }

    /// Whether `link` is the link to the unit (false: nothing there); throws for anything else there.
    func linksToUnit(_ link: String) throws -> Bool {
        guard let info = try files.info(of: link) else { return false }
        guard info.type == .symlink, try files.linkTarget(of: link) == Self.unitPath else {
            throw ShardIssue("not the link lq shard install-units writes; left alone", file: link)
        }
        return true
    }
}

/// The shard folders of a volume list that are there now.
public enum ShardBootVolumes {
    /// The folders matching `patterns` that read as shards, in order, none twice and no name twice;
    /// and each one skipped, with why (a pattern matching nothing is not skipped: it is not there).
    public static func present(_ patterns: [String], attached: [AttachedShard] = []) -> (roots: [String], skipped: [String]) {
        let files = SystemFileSystem()
        var (roots, skipped, names) = ([String](), [String](), Set(attached.map(\.name)))
        for pattern in patterns {
            let matches: [String]
            do { matches = try files.paths(matching: pattern) } catch {
                skipped.append("\(pattern): \(error)")
                continue
            }
            for root in matches where !roots.contains(root) && !attached.contains(where: { $0.root == root }) {
                guard (try? files.info(of: root, followSymlink: true))??.type == .directory else { continue }
                switch ShardFolder(root: root).read().shard {
                case .success(let shard) where names.contains(shard.name):
                    skipped.append("\(root): a shard named \(shard.name) is attached or found already")
                case .success(let shard):
                    names.insert(shard.name)
                    roots.append(root)
                case .failure(let issue): skipped.append(issue.description)
                }
            }
        }
        return (roots, skipped)
    }
}
