import SystemLayer

/// Deploying template entries: pass 1 replacements and pass 2 (missing entries).
extension GuardRun {
    /// A folder of the volume in pass 2: open for real, or (dry run) one pass 1 would have deployed.
    enum Folder {
        case real(Descriptor)
        case planned(RuleEntry)
    }

    /// Pass 2: walks the template trees of one folder (the qube's tree first, then `ALL`, names sorted)
    /// and deploys what is missing. A directory deployed from one tree gets the other tree's extra
    /// children when pass 2 enters it.
    mutating func deployMissing(_ sources: [(RuleTree, RuleEntry)], in folder: Folder, _ path: RelativePath) {
        var names: [Name] = []
        var seen: Set<Name> = []
        for (_, entry) in sources {
            for name in entry.children.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where seen.insert(name).inserted {
                names.append(name)
            }
        }
        for name in names {
            let candidates = sources.compactMap { source in source.1.children[name].map { (source.0, $0) } }
            let (tree, entry) = candidates[0]
            let entryPath = path.appending(name)
            var inner: Folder? = nil
            switch folder {
            case .planned(let deployed):
                if let present = deployed.children[name] {
                    if present.isDirectory { inner = .planned(present) }
                } else {
                    report.deployed.append(ReportEntry(entryPath, rule: tree.name, detail: "would deploy: missing"))
                    if entry.isDirectory { inner = .planned(entry) }
                }
            case .real(let fd):
                if options.dryRun, let planned = plannedDeploys[entryPath] {
                    if planned.isDirectory { inner = .planned(planned) }
                    break
                }
                let info: FileInfo?
                do {
                    info = plannedRemovals.contains(entryPath) ? nil : try system.status(fd, name)
                } catch {
                    fail(.system, entryPath, "cannot inspect: \(error)")
                    continue
                }
                if info == nil {
                    if options.dryRun {
                        report.deployed.append(ReportEntry(entryPath, rule: tree.name, detail: "would deploy: missing"))
                        if entry.isDirectory { inner = .planned(entry) }
                        break
                    }
                    guard deploy(tree, entry, fd, name, entryPath, detail: "missing") else { continue }
                } else if info?.type != .directory {
                    continue
                }
                if entry.isDirectory {
                    do {
                        inner = .real(try system.openDirectory(fd, name, followSymlink: false))
                    } catch {
                        fail(error.isUnexpectedType ? .changed : .system, entryPath, "cannot enter: \(error)")
                    }
                }
            }
            guard let inner else { continue }
            deployMissing(candidates.filter { $0.1.isDirectory }, in: inner, entryPath)
            if case .real(let innerFD) = inner { system.close(innerFD) }
        }
    }

    /// Copies a template entry (with its subtree from the same tree) to `dir/name`, which must not exist:
    /// owner and group first, then the mode, the modification time, and the immutable flag on files
    /// (at once; docs/boot-guard.md, "Deploying"). Reports it as deployed; returns whether it worked.
    @discardableResult
    mutating func deploy(_ tree: RuleTree, _ entry: RuleEntry, _ dir: Descriptor, _ name: Name, _ path: RelativePath, detail: String) -> Bool {
        let before = report.errors.count
        copy(tree, entry, RelativePath(path.components), dir, name)
        guard report.errors.count == before else { return false }
        report.deployed.append(ReportEntry(path, rule: tree.name, detail: detail))
        return true
    }

    private mutating func copy(_ tree: RuleTree, _ entry: RuleEntry, _ path: RelativePath, _ dir: Descriptor, _ name: Name) {
        let meta = entry.info
        do {
            switch entry.kind {
            case .file:
                let content = try tree.content(of: path, limit: options.maxFileSize, system: system)
                let fd = try system.createFile(dir, name)
                defer { system.close(fd) }
                try system.write(fd, content)
                try system.setOwner(fd, owner: meta.owner, group: meta.group)
                try system.setPermissions(fd, meta.permissions)
                try system.setModificationTime(fd, seconds: meta.modificationSeconds, nanoseconds: meta.modificationNanoseconds)
                let flags = (try? system.flags(fd)) ?? []
                try system.setFlags(fd, flags.subtracting(.noDump).union(.immutable))
            case .directory:
                try system.makeDirectory(dir, name)
                let fd = try system.openDirectory(dir, name, followSymlink: false)
                defer { system.close(fd) }
                for child in entry.children.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                    copy(tree, entry.children[child]!, path.appending(child), fd, child)
                }
                try system.setOwner(fd, owner: meta.owner, group: meta.group)
                try system.setPermissions(fd, meta.permissions)
                try system.setModificationTime(fd, seconds: meta.modificationSeconds, nanoseconds: meta.modificationNanoseconds)
            case .symlink(let target):
                try system.makeSymlink(target, dir, name)
                try system.setOwner(dir, name, owner: meta.owner, group: meta.group)
            case .socket:
                try system.makeSocket(dir, name)
                try system.setOwner(dir, name, owner: meta.owner, group: meta.group)
                try system.setPermissions(dir, name, meta.permissions)
            case .unsupported(let type):
                fail(.rules, path, "a \(type.rawValue) in a template tree is not supported", rule: tree.name)
            }
        } catch let error as ProtectError {
            report.errors.append(error)
        } catch {
            fail(.system, path, "cannot deploy: \(error)", rule: tree.name)
        }
    }
}
