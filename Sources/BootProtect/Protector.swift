import LQCommon
import SystemLayer

/// The boot-time guard of a qube's private volume (docs/boot-guard.md).
///
/// Pass 1 walks the volume depth first (names sorted bytewise, the top-level `QUARANTINE` skipped)
/// and judges each entry by the first category that knows its path: template, checksum, whitelist,
/// then the `.any_file`/`.any_dir` markers, else it is rogue. A quarantined or replaced directory is
/// not entered (docs/boot-guard.md, "Pass 1"). Pass 2 deploys template entries that are missing.
///
/// Every action re-checks that the entry is the one that was scanned (same device, inode and type,
/// reached through `O_NOFOLLOW` opens), so a swap during the run is an error, never a followed link.
public struct ProtectOptions: Sendable {
    public var qube: String
    public var dryRun: Bool
    /// The volume is known to be blank (`--first-boot`): do nothing.
    public var firstBoot: Bool
    /// Largest template or pinned file the guard reads.
    public var maxFileSize: Int

    public init(qube: String, dryRun: Bool = false, firstBoot: Bool = false, maxFileSize: Int = 256 << 20) {
        self.qube = qube
        self.dryRun = dryRun
        self.firstBoot = firstBoot
        self.maxFileSize = maxFileSize
    }
}

/// Where the private volume is.
public enum PrivateVolume: Sendable, Hashable {
    /// An already mounted folder (`/rw`, or a test folder).
    case folder(String)
    /// A block device the guard mounts at `mountPoint` and unmounts afterwards; an all-zero
    /// device that does not mount is a first boot.
    case device(String, mountPoint: String)
}

public enum BootProtect {
    /// How many leading bytes of an unmountable device must be zero for a first boot.
    public static let blankPrefix = 65536

    /// Runs the guard. Never throws: every problem is in the report. Sends at most one
    /// notification, when something was removed or went wrong (not in a dry run).
    public static func run(
        volume: PrivateVolume, rules rulesPath: String, options: ProtectOptions,
        system: any SystemCalls = HostSystem(), notifier: (any Notifier)? = nil
    ) -> ProtectReport {
        var report = ProtectReport(qube: options.qube, dryRun: options.dryRun)
        defer {
            if !options.dryRun && report.needsAttention { notifier?.notify(qube: options.qube, message: report.summary) }
        }
        guard isValidQubeName(options.qube) else {
            report.outcome = .failed
            report.errors.append(ProtectError(.rules, "not a valid qube name: \(displayName(Array(options.qube.utf8)))"))
            return report
        }
        guard let rulesFD = openFolder(rulesPath, .rules, "the rules folder", system, &report) else { return report }
        defer { system.close(rulesFD) }
        let settings = loadSettings(rulesFD, qube: options.qube, system: system, report: &report)
        guard settings.active else {
            report.outcome = .inactive
            return report
        }
        if options.firstBoot {
            report.outcome = .firstBoot
            report.powerOff = settings.powerOff ? .inOneMinute : nil
            return report
        }
        let root: String
        switch volume {
        case .folder(let path):
            root = path
        case .device(let device, let mountPoint):
            do {
                try system.mount(device, at: mountPoint)
            } catch let mountError {
                let prefix = (try? system.readPrefix(device, count: blankPrefix)) ?? [1]
                if !prefix.isEmpty && prefix.allSatisfy({ $0 == 0 }) {
                    report.outcome = .firstBoot
                    report.powerOff = settings.powerOff ? .inOneMinute : nil
                } else {
                    report.outcome = .failed
                    report.powerOff = settings.powerOff ? .now : nil
                    report.errors.append(ProtectError(.mount, "cannot mount and not blank: \(mountError)", path: device))
                }
                return report
            }
            root = mountPoint
        }
        defer {
            if case .device(_, let mountPoint) = volume {
                do { try system.unmount(mountPoint) } catch {
                    report.errors.append(ProtectError(.system, "cannot unmount: \(error)", path: mountPoint))
                }
            }
        }
        guard let rootFD = openFolder(root, .system, "the private volume", system, &report) else { return report }
        defer { system.close(rootFD) }
        let rules: Rules
        do {
            rules = try Rules.load(from: rulesFD, qube: options.qube, system: system)
        } catch {
            report.outcome = .failed
            report.errors.append(error)
            return report
        }
        defer { rules.close(system: system) }
        var guardRun = GuardRun(system: system, rules: rules, settings: settings, options: options, root: rootFD, report: report)
        guardRun.checkFolder(rootFD, RelativePath())
        if settings.deployMissing {
            guardRun.deployMissing(rules.templates.map { ($0, $0.top) }, in: .real(rootFD), RelativePath())
        }
        guardRun.closeQuarantine()
        report = guardRun.report
        if settings.obscure { removeRules(rulesPath, system: system, report: &report, dryRun: options.dryRun) }
        return report
    }

    /// Opens a folder given by the administrator (it may be a symlink); a failure fails the run.
    static func openFolder(
        _ path: String, _ code: ProtectError.Code, _ what: String, _ system: any SystemCalls, _ report: inout ProtectReport
    ) -> Descriptor? {
        do {
            return try system.openDirectory(currentDirectory, Array(path.utf8), followSymlink: true)
        } catch {
            report.outcome = .failed
            report.errors.append(ProtectError(code, "cannot open \(what): \(error)", path: path))
            return nil
        }
    }

    /// Reads `settings.<qube>` if present; issues become `settings` errors.
    static func loadSettings(_ rules: Descriptor, qube: String, system: any SystemCalls, report: inout ProtectReport) -> Settings {
        let name = "settings.\(qube)"
        let bytes: [UInt8]
        do {
            let fd = try system.openFile(rules, Array(name.utf8))
            defer { system.close(fd) }
            guard try system.status(fd).type == .regular else {
                report.errors.append(ProtectError(.settings, "not a regular file; defaults used", path: name))
                return Settings()
            }
            bytes = try system.read(fd, limit: 65536)
        } catch {
            if !error.isNotFound { report.errors.append(ProtectError(.settings, "cannot read: \(error); defaults used", path: name)) }
            return Settings()
        }
        let (settings, issues) = Settings.parse(bytes)
        report.errors += issues.map { ProtectError(.settings, $0.description, path: name) }
        return settings
    }

    /// `OBSCURE=Yes`: removes the rules folder, so later code in the qube cannot read other qubes' trees.
    static func removeRules(_ path: String, system: any SystemCalls, report: inout ProtectReport, dryRun: Bool) {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        guard let slash = trimmed.utf8.lastIndex(of: UInt8(ascii: "/")) else { return }
        let parent = slash == trimmed.utf8.startIndex ? "/" : String(trimmed[..<slash])
        let name = Array(trimmed.utf8[trimmed.utf8.index(after: slash)...])
        var remover = GuardRun(
            system: system, rules: Rules(), settings: Settings(), options: ProtectOptions(qube: report.qube, dryRun: dryRun),
            root: currentDirectory, report: report)
        do {
            let fd = try system.openDirectory(currentDirectory, Array(parent.utf8), followSymlink: true)
            defer { system.close(fd) }
            if let info = try system.status(fd, name) {
                remover.removeTree(fd, name, info, RelativePath([name]))
            }
        } catch {
            remover.report.errors.append(ProtectError(.system, "cannot remove the rules folder: \(error)", path: path))
        }
        report = remover.report
    }
}

/// The state of one run: the open quarantine folder and, in a dry run, what pass 1 would have changed.
struct GuardRun {
    let system: any SystemCalls
    let rules: Rules
    let settings: Settings
    let options: ProtectOptions
    let root: Descriptor
    var report: ProtectReport
    var quarantine: Descriptor? = nil
    /// Dry run: entries pass 1 would have removed (absent for pass 2) …
    var plannedRemovals: Set<RelativePath> = []
    /// … and entries it would have replaced, with the template entry (present for pass 2).
    var plannedDeploys: [RelativePath: RuleEntry] = [:]

    static let quarantineName: Name = Array("QUARANTINE".utf8)

    init(system: any SystemCalls, rules: Rules, settings: Settings, options: ProtectOptions, root: Descriptor, report: ProtectReport) {
        self.system = system
        self.rules = rules
        self.settings = settings
        self.options = options
        self.root = root
        self.report = report
    }

    /// Records an error once (pass 2 may meet the same bad template entry as pass 1).
    mutating func fail(_ code: ProtectError.Code, _ path: RelativePath, _ message: String, rule: String? = nil) {
        let error = ProtectError(code, message, path: path.description, rule: rule)
        if !report.errors.contains(error) { report.errors.append(error) }
    }

    mutating func closeQuarantine() {
        if let quarantine { system.close(quarantine) }
        quarantine = nil
    }

    // MARK: Pass 1

    /// What pass 1 decided for one entry.
    enum Verdict {
        /// Allowed by a marker or `ALLOW_ROGUE`: not touched.
        case keep
        /// Matches a rule: enforce owner, group and mode, maybe make immutable, maybe enter it.
        case enforce(RuleEntry, rule: String, immutable: Bool)
        /// Replace with the template entry.
        case replace(RuleTree, RuleEntry, reason: String)
        /// Remove (quarantine or delete).
        case remove(rule: String, reason: String)
    }

    /// Judges and handles every entry of an open folder of the volume.
    mutating func checkFolder(_ fd: Descriptor, _ path: RelativePath) {
        let names: [Name]
        do {
            names = try system.entries(fd).sorted { $0.lexicographicallyPrecedes($1) }
        } catch {
            return fail(.system, path, "cannot list: \(error)")
        }
        for name in names where !(path.isRoot && name == Self.quarantineName) {
            let entryPath = path.appending(name)
            let info: FileInfo
            do {
                guard let found = try system.status(fd, name) else { continue }
                info = found
            } catch {
                fail(.system, entryPath, "cannot inspect: \(error)")
                continue
            }
            handle(fd, name, entryPath, info)
        }
    }

    mutating func handle(_ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo) {
        switch judge(dir, name, path, info) {
        case .keep:
            return
        case .enforce(let entry, let rule, let immutable):
            enforce(dir, name, path, info, entry, rule: rule, immutable: immutable)
        case .replace(let tree, let entry, let reason):
            guard remove(dir, name, path, info, rule: tree.name, reason: reason, replacing: true) else { return }
            if options.dryRun {
                plannedDeploys[path] = entry
                report.deployed.append(ReportEntry(path, rule: tree.name, detail: "would replace: \(reason)"))
            } else {
                deploy(tree, entry, dir, name, path, detail: "replaced: \(reason)")
            }
        case .remove(let rule, let reason):
            if remove(dir, name, path, info, rule: rule, reason: reason, replacing: false) && options.dryRun {
                plannedRemovals.insert(path)
            }
        }
    }

    mutating func judge(_ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo) -> Verdict {
        if let (tree, entry) = Rules.first(rules.templates, path) {
            return judgeTemplate(dir, name, path, info, tree, entry)
        }
        if let (tree, entry) = Rules.first(rules.checksums, path) {
            return judgeChecksum(dir, name, path, info, tree, entry)
        }
        if let (tree, entry) = Rules.first(rules.whitelists, path) {
            let same: Bool
            switch entry.kind {
            case .symlink(let target): same = info.type == .symlink && (try? system.readLink(dir, name)) == target
            case .file: same = info.type == .regular
            case .directory: same = info.type == .directory
            case .socket: same = info.type == .socket
            case .unsupported(let type): same = info.type == type
            }
            guard same else { return .remove(rule: tree.name, reason: "a \(info.type.rawValue) where the whitelist has a \(entry.kindName)") }
            return .enforce(entry, rule: tree.name, immutable: false)
        }
        let folder = path.parent
        if info.type == .regular, rules.marker(folder, ".any_file") != nil { return .keep }
        if info.type == .directory, rules.marker(folder, ".any_dir") != nil { return .keep }
        if !folder.isRoot {
            var ancestor = folder
            repeat {
                ancestor = ancestor.parent
                if rules.marker(ancestor, ".any_dir") != nil { return .keep }
            } while !ancestor.isRoot
        }
        if settings.allowRogue { return .keep }
        return .remove(rule: "no rule", reason: "a \(info.type.rawValue) no rule allows")
    }

    mutating func judgeTemplate(
        _ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo, _ tree: RuleTree, _ entry: RuleEntry
    ) -> Verdict {
        let mismatch = "a \(info.type.rawValue) where the template has a \(entry.kindName)"
        switch entry.kind {
        case .symlink(let target):
            guard info.type == .symlink else { return .replace(tree, entry, reason: mismatch) }
            guard (try? system.readLink(dir, name)) == target else { return .replace(tree, entry, reason: "the symlink text differs") }
            return .enforce(entry, rule: tree.name, immutable: false)
        case .directory, .socket:
            guard info.type == (entry.isDirectory ? .directory : .socket) else { return .replace(tree, entry, reason: mismatch) }
            return .enforce(entry, rule: tree.name, immutable: false)
        case .file:
            guard info.type == .regular else { return .replace(tree, entry, reason: mismatch) }
            // A second name for the inode would share its new owner, mode and immutability.
            guard info.links == 1 else { return .replace(tree, entry, reason: "the file has \(info.links) hard links") }
            let expected: [UInt8]
            do {
                expected = try tree.content(of: path, limit: options.maxFileSize, system: system)
            } catch {
                report.errors.append(error)
                return .keep
            }
            guard info.size == Int64(expected.count), let actual = readVerified(dir, name, path, info), actual == expected else {
                return .replace(tree, entry, reason: "the content differs")
            }
            return .enforce(entry, rule: tree.name, immutable: true)
        case .unsupported(let type):
            fail(.rules, path, "a \(type.rawValue) in a template tree is not supported", rule: tree.name)
            return .remove(rule: tree.name, reason: "the template entry is a \(type.rawValue)")
        }
    }

    mutating func judgeChecksum(
        _ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo, _ tree: RuleTree, _ entry: RuleEntry
    ) -> Verdict {
        switch entry.kind {
        case .file:
            guard info.type == .regular else {
                return .remove(rule: tree.name, reason: "a \(info.type.rawValue) where a pinned file is expected")
            }
            guard info.links == 1 else { return .remove(rule: tree.name, reason: "the pinned file has \(info.links) hard links") }
            let pin: ChecksumPin
            do {
                pin = try ChecksumPin(parsing: try tree.content(of: path, limit: 4096, system: system))
            } catch let error as ChecksumPin.ParseError {
                fail(.rules, path, "bad checksum file: \(error)", rule: tree.name)
                return .remove(rule: tree.name, reason: "the checksum file is malformed")
            } catch {
                report.errors.append(error as? ProtectError ?? ProtectError(.rules, "\(error)", path: path.description))
                return .remove(rule: tree.name, reason: "the checksum file is unreadable")
            }
            guard info.size <= Int64(options.maxFileSize), let content = readVerified(dir, name, path, info), pin.matches(content) else {
                return .remove(rule: tree.name, reason: "checksum mismatch")
            }
            return .enforce(entry, rule: tree.name, immutable: true)
        case .directory:
            guard info.type == .directory else {
                return .remove(rule: tree.name, reason: "a \(info.type.rawValue) where the checksum tree has a directory")
            }
            return .enforce(entry, rule: tree.name, immutable: false)
        default:
            fail(.rules, path, "a \(entry.kindName) in a checksum tree is not supported", rule: tree.name)
            return .remove(rule: tree.name, reason: "the checksum entry is a \(entry.kindName)")
        }
    }

    /// The content of a regular file, read through an `O_NOFOLLOW` open of the entry that was scanned.
    mutating func readVerified(_ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo) -> [UInt8]? {
        guard let fd = openVerified(dir, name, path, info) else { return nil }
        defer { system.close(fd) }
        do {
            return try system.read(fd, limit: options.maxFileSize)
        } catch {
            fail(.system, path, "cannot read: \(error)")
            return nil
        }
    }

    /// Opens a scanned regular file or directory without following symlinks and checks it is still the
    /// same inode; `nil` (and an error) if it is not.
    mutating func openVerified(_ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo) -> Descriptor? {
        do {
            let fd = info.type == .directory
                ? try system.openDirectory(dir, name, followSymlink: false) : try system.openFile(dir, name)
            if let now = try? system.status(fd), now.isSameEntry(as: info) { return fd }
            system.close(fd)
            fail(.changed, path, "was replaced during the run; left alone")
        } catch {
            fail(error.isUnexpectedType ? .changed : .system, path,
                 error.isUnexpectedType ? "is no longer a \(info.type.rawValue) (\(error)); left alone" : "cannot open: \(error)")
        }
        return nil
    }

    /// Enforces owner, group and mode (chown first, then chmod), makes files immutable when asked,
    /// and enters directories.
    mutating func enforce(
        _ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo, _ entry: RuleEntry, rule: String, immutable: Bool
    ) {
        var changes: [String] = []
        if info.owner != entry.info.owner || info.group != entry.info.group {
            changes.append("owner \(info.owner):\(info.group) → \(entry.info.owner):\(entry.info.group)")
        }
        if info.permissions != entry.info.permissions {
            changes.append("mode \(octal(info.permissions)) → \(octal(entry.info.permissions))")
        }
        switch info.type {
        case .regular, .directory:
            guard let fd = openVerified(dir, name, path, info) else { return }
            defer { system.close(fd) }
            do {
                let flags = try? system.flags(fd)
                let wasImmutable = flags?.contains(.immutable) ?? false
                if immutable && !wasImmutable { changes.append("made immutable") }
                if !options.dryRun && !changes.isEmpty {
                    if let flags, !flags.isDisjoint(with: Self.lockFlags) {
                        try system.setFlags(fd, flags.subtracting(Self.lockFlags))
                    }
                    if info.owner != entry.info.owner || info.group != entry.info.group {
                        try system.setOwner(fd, owner: entry.info.owner, group: entry.info.group)
                    }
                    try system.setPermissions(fd, entry.info.permissions)
                    if immutable { try system.setFlags(fd, (flags ?? []).subtracting(Self.lockFlags.union(.noDump)).union(.immutable)) }
                }
                if !changes.isEmpty { report.fixed.append(ReportEntry(path, rule: rule, detail: changes.joined(separator: ", "))) }
            } catch {
                fail(.system, path, "cannot set owner, mode or flags: \(error)", rule: rule)
            }
            if info.type == .directory { checkFolder(fd, path) }
        case .symlink, .socket:
            guard !changes.isEmpty else { return }
            do {
                guard let now = try system.status(dir, name), now.isSameEntry(as: info) else {
                    return fail(.changed, path, "was replaced during the run; left alone", rule: rule)
                }
                if !options.dryRun {
                    try system.setOwner(dir, name, owner: entry.info.owner, group: entry.info.group)
                    if info.type == .socket { try system.setPermissions(dir, name, entry.info.permissions) }
                }
                if info.type == .symlink { changes.removeAll { $0.hasPrefix("mode") } }
                if !changes.isEmpty { report.fixed.append(ReportEntry(path, rule: rule, detail: changes.joined(separator: ", "))) }
            } catch {
                fail(.system, path, "cannot set owner or mode: \(error)", rule: rule)
            }
        default:
            return
        }
    }

    /// Flags that stop a rename, an unlink or a write: immutable and append-only.
    static let lockFlags: InodeFlags = [.immutable, InodeFlags(rawValue: 0x20)]

    // MARK: Removal

    /// Quarantines (or, with `QUARANTINE=No`, deletes) an entry with its subtree. Returns whether it is gone.
    mutating func remove(
        _ dir: Descriptor, _ name: Name, _ path: RelativePath, _ info: FileInfo, rule: String, reason: String, replacing: Bool
    ) -> Bool {
        guard settings.quarantine else {
            let before = report.errors.count
            removeTree(dir, name, info, path)
            if report.errors.count == before {
                report.deleted.append(ReportEntry(path, rule: rule, detail: reason))
                return true
            }
            return false
        }
        let target = "QUARANTINE/\(displayName(name))"
        if options.dryRun {
            report.quarantined.append(ReportEntry(path, rule: rule, detail: "\(reason); would move to \(target)"))
            return true
        }
        do {
            let quarantine = try openQuarantine()
            unlock(dir, name, info, path)
            if try system.status(quarantine, name) != nil {
                // Collision rule (docs/boot-guard.md, "Quarantine"): the older quarantined entry gets `.<ns>`.
                var older = name + Array(".\(system.now())".utf8)
                while try system.status(quarantine, older) != nil { older += Array("_".utf8) }
                try system.rename(quarantine, name, quarantine, older, replace: false)
            }
            try system.rename(dir, name, quarantine, name, replace: false)
            report.quarantined.append(ReportEntry(path, rule: rule, detail: "\(reason); moved to \(target)"))
            return true
        } catch {
            fail(.system, path, "cannot quarantine: \(error)", rule: rule)
            return false
        }
    }

    /// The top-level `QUARANTINE` folder, created (0700) if missing. Anything else by that name is removed first.
    mutating func openQuarantine() throws(SystemError) -> Descriptor {
        if let quarantine { return quarantine }
        let info = try system.status(root, Self.quarantineName)
        if let info, info.type != .directory {
            try system.remove(root, Self.quarantineName, directory: false)
            report.deleted.append(ReportEntry(RelativePath([Self.quarantineName]), rule: "no rule", detail: "a \(info.type.rawValue) named QUARANTINE"))
        }
        if info == nil || info?.type != .directory { try system.makeDirectory(root, Self.quarantineName) }
        let fd = try system.openDirectory(root, Self.quarantineName, followSymlink: false)
        quarantine = fd
        return fd
    }

    /// Clears the immutable and append-only flags on an entry and everything below it, so it can be moved
    /// and later deleted. Symlinks are never opened.
    mutating func unlock(_ dir: Descriptor, _ name: Name, _ info: FileInfo, _ path: RelativePath) {
        guard info.type == .regular || info.type == .directory, let fd = openVerified(dir, name, path, info) else { return }
        defer { system.close(fd) }
        if let flags = try? system.flags(fd), !flags.isDisjoint(with: Self.lockFlags) {
            do { try system.setFlags(fd, flags.subtracting(Self.lockFlags)) } catch {
                fail(.system, path, "cannot clear the immutable flag: \(error)")
            }
        }
        guard info.type == .directory, let names = try? system.entries(fd) else { return }
        for child in names {
            if let childInfo = try? system.status(fd, child) { unlock(fd, child, childInfo, path.appending(child)) }
        }
    }

    /// Deletes an entry and its subtree bottom-up with `unlinkat`, entering directories only through
    /// `O_NOFOLLOW` opens. A dry run only checks that the entry is still there.
    mutating func removeTree(_ dir: Descriptor, _ name: Name, _ info: FileInfo, _ path: RelativePath) {
        if options.dryRun { return }
        unlock(dir, name, info, path)
        if info.type == .directory {
            guard let fd = openVerified(dir, name, path, info) else { return }
            defer { system.close(fd) }
            do {
                for child in try system.entries(fd) {
                    if let childInfo = try system.status(fd, child) { removeTree(fd, child, childInfo, path.appending(child)) }
                }
            } catch {
                return fail(.system, path, "cannot list for deletion: \(error)")
            }
        }
        do { try system.remove(dir, name, directory: info.type == .directory) } catch {
            fail(.system, path, "cannot delete: \(error)")
        }
    }
}

extension RuleEntry {
    /// `file`, `directory`, `symlink`, `socket`, or the unsupported type.
    var kindName: String {
        switch kind {
        case .file: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .socket: "socket"
        case .unsupported(let type): type.rawValue
        }
    }
}
