import LQCommon
import SystemLayer

/// Pass 1: every entry of the private volume judged against the rules, and what it must become
/// (docs/boot-guard.md, "Pass 1", "Markers").
extension GuardRun {
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
}
