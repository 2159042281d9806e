import SystemLayer

/// Taking entries out of the private volume: quarantine (or deletion), after lifting immutable and
/// append-only flags, never following a symlink (docs/boot-guard.md, "Quarantine").
extension GuardRun {
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
