import SystemLayer

/// A path inside the private volume, relative to its root, as raw name components.
public struct RelativePath: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var components: [Name]

    public init(_ components: [Name] = []) { self.components = components }

    /// Splits `text` at `/` (for tests and command-line input).
    public init(_ text: String) {
        components = text.utf8.split(separator: UInt8(ascii: "/")).map(Array.init)
    }

    public var isRoot: Bool { components.isEmpty }
    public var name: Name { components.last ?? [] }
    public var parent: RelativePath { RelativePath(Array(components.dropLast())) }
    public func appending(_ name: Name) -> RelativePath { RelativePath(components + [name]) }

    /// Whether `self` is `other` or inside it.
    public func isWithin(_ other: RelativePath) -> Bool {
        components.count >= other.components.count && Array(components.prefix(other.components.count)) == other.components
    }

    public static func < (a: RelativePath, b: RelativePath) -> Bool {
        a.components.lexicographicallyPrecedes(b.components) { $0.lexicographicallyPrecedes($1) }
    }

    /// `a/b/c`, `.` for the root; bytes that are not printable UTF-8 (and `\`) as `\xNN`,
    /// so a name cannot break a log line or a terminal.
    public var description: String {
        isRoot ? "." : components.map(displayName).joined(separator: "/")
    }
}

/// What the guard did (or, in a dry run, would do) to one entry.
public struct ReportEntry: Sendable, Hashable, CustomStringConvertible {
    /// The entry, relative to the private volume.
    public var path: RelativePath
    /// The rule that decided: a tree (`template.core-keys`), a marker (`whitelist.ALL/home/.any_dir`),
    /// or `no rule` for a rogue entry.
    public var rule: String
    /// What happened: the permissions changed, where a quarantined entry went, why it was removed.
    public var detail: String

    public init(_ path: RelativePath, rule: String, detail: String = "") {
        self.path = path
        self.rule = rule
        self.detail = detail
    }

    public var description: String { "\(path) (\(rule))" + (detail.isEmpty ? "" : ": \(detail)") }
}

/// A problem the guard met. Names the path and the rule, never file contents.
public struct ProtectError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// A settings line was ignored or read as false.
        case settings
        /// A rules tree is unusable (unsupported entry type, malformed checksum file).
        case rules
        /// A system call failed.
        case system
        /// An entry changed between the scan and the action (a swap, e.g. a directory for a symlink).
        case changed
        /// The private volume could not be mounted and is not blank.
        case mount
    }

    public var code: Code
    /// The entry or file concerned, if any.
    public var path: String?
    public var rule: String?
    public var message: String

    public init(_ code: Code, _ message: String, path: String? = nil, rule: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.rule = rule
    }

    public var description: String {
        var text = path.map { "\($0): " } ?? ""
        text += message
        if let rule { text += " (rule \(rule))" }
        return text
    }
}

/// The result of one run of the guard.
public struct ProtectReport: Sendable, Hashable {
    public enum Outcome: String, Sendable, Hashable {
        /// The volume was checked.
        case checked
        /// `ACTIVE=No`: nothing was done.
        case inactive
        /// A blank (all-zero) volume left to Qubes: nothing was done; the next boot is the first templated one.
        case firstBoot = "first-boot"
        /// The volume could not be opened or mounted.
        case failed
    }

    /// `POWEROFF=Yes` asks the caller to power the qube off: at once after a mount failure, in a minute
    /// after a first boot (the library itself never does).
    public enum PowerOff: String, Sendable, Hashable {
        case now
        case inOneMinute = "in-one-minute"
    }

    public var qube: String
    public var dryRun: Bool
    public var outcome: Outcome = .checked
    public var powerOff: PowerOff? = nil
    /// The blank device the guard formatted before templating it.
    public var formatted: String? = nil
    /// Entries created from a template (pass 1 replacements and pass 2).
    public var deployed: [ReportEntry] = []
    /// Entries whose owner, group or mode was corrected, or that were made immutable.
    public var fixed: [ReportEntry] = []
    /// Entries moved into `QUARANTINE`.
    public var quarantined: [ReportEntry] = []
    /// Entries removed (`QUARANTINE=No`).
    public var deleted: [ReportEntry] = []
    public var errors: [ProtectError] = []

    public init(qube: String, dryRun: Bool) {
        self.qube = qube
        self.dryRun = dryRun
    }

    /// Whether dom0 should hear about this run: something was removed or went wrong.
    public var needsAttention: Bool { !quarantined.isEmpty || !deleted.isEmpty || !errors.isEmpty }

    /// The one-line dom0 notification, e.g. `Files quarantined during boot: 2 quarantined, 1 error`.
    public var summary: String {
        var parts: [String] = []
        func count(_ number: Int, _ word: String) {
            if number > 0 { parts.append("\(number) \(word)") }
        }
        count(quarantined.count, "quarantined")
        count(deleted.count, "deleted")
        count(deployed.count, "deployed")
        count(fixed.count, "fixed")
        count(errors.count, errors.count == 1 ? "error" : "errors")
        let head = quarantined.isEmpty && deleted.isEmpty ? "Boot protection" : "Files quarantined during boot"
        return parts.isEmpty ? "\(head): nothing to do" : "\(head): " + parts.joined(separator: ", ")
    }
}
