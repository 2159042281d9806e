import Foundation
import QrexecPolicy
import QubesAdmin
import QubesStore
import SystemLayer

/// Attach and detach on a running dom0 (docs/shards.md, "Attach and detach"):
/// stop qubesd, split what is attached, merge what is to be attached,
/// install the isolation policy, start qubesd and wait for its socket. Any
/// failure puts every file back as it was and starts qubesd on it again.
public enum ShardLifecycle {
    /// Attaches the shard folders `roots` to what is attached now.
    /// - Parameters:
    ///   - main, merged: the main store and the merged store; when shards are
    ///     attached already they must be the recorded ones (nil: recorded or default).
    ///   - options: the merge options for the new merge; split replays with the recorded ones.
    ///   - volumeList: a volume list (`ShardBootUnits`) whose present shard folders are attached too,
    ///     those not attached yet; what does not read as a shard is a warning, and none present is no error.
    ///   - dryRun: only report the steps.
    /// - Throws: `LifecycleError`.
    public static func attach(
        _ roots: [String], main: String? = nil, merged: String? = nil, options: ShardOptions = ShardOptions(),
        volumeList: String? = nil, dryRun: Bool = false, settings: LifecycleSettings
    ) throws -> LifecycleReport {
        let runtime = RuntimeFiles(paths: settings.paths)
        return try refusing {
            try runtime.locked {
                let before = try runtime.record()
                let mainPath = main ?? before?.main ?? LifecyclePaths.defaultMain
                let mergedPath = merged ?? before?.merged ?? settings.paths.defaultMerged
                if let before, before.main != mainPath || before.merged != mergedPath {
                    throw ShardIssue(
                        "shards are attached with main store \(before.main) and merged store \(before.merged); detach them first",
                        file: settings.paths.record, field: before.main != mainPath ? "main" : "merged",
                        value: before.main != mainPath ? mainPath : mergedPath)
                }
                guard mainPath != mergedPath else {
                    throw ShardIssue("the merged store must not be the main store", field: "merged", value: mergedPath)
                }
                var shards = before?.shards ?? []
                var (roots, report) = (roots, LifecycleReport())
                if let volumeList {
                    let patterns = try ShardBootUnits.parseVolumeList(SystemFileSystem().contents(of: volumeList, limit: 1 << 20), file: volumeList)
                    let present = ShardBootVolumes.present(patterns, attached: shards + roots.map { AttachedShard(root: $0, name: "") })
                    report.warnings += present.skipped.map { "skipped: \($0)" }
                    roots += present.roots
                    if roots.isEmpty, before == nil { return report }
                }
                var new: [AttachedShard] = []
                for root in roots {
                    let shard = try ShardFolder(root: root).read().shard.get()
                    if shards.contains(AttachedShard(root: root, name: shard.name)) { continue }
                    if let other = (shards + new).first(where: { $0.root == root || $0.name == shard.name }) {
                        throw ShardIssue("a shard of this name is attached already from \(other.root)", file: root, field: "name", value: shard.name)
                    }
                    new.append(AttachedShard(root: root, name: shard.name))
                }
                if !dryRun { try refuseAtBootWhileQubesdAnswers(settings) }
                if let before, new.isEmpty {
                    // Everything asked for is attached: only qubesd's side may be missing (a run stopped after the record).
                    var run = Run(settings: settings, before: before, after: before, dryRun: dryRun, report: report, resume: true)
                    try run.execute(into: &report)
                    return report
                }
                shards += new
                if let before, !dryRun, !settings.boot {
                    try settings.beforeStep(.checkRunning)
                    let running = try runningQubes(of: before.shards.map(\.name), record: before, settings: settings)
                    guard running.isEmpty else {
                        throw ShardIssue(
                            "qubes of attached shards are running, and merging again would change their qids: "
                                + running.joined(separator: ", ") + "; shut them down first", field: "running", value: running.joined(separator: " "))
                    }
                }
                let after = ShardRecord(main: mainPath, merged: mergedPath, shards: shards, options: options)
                var run = Run(settings: settings, before: before, after: after, dryRun: dryRun, report: report)
                try run.execute(into: &report)
                return report
            }
        }
    }

    /// Detaches the attached shards named `names` (nil: all of them), then
    /// audits the main store and the runtime folders for traces of them.
    /// - Parameter shutDown: shut the running qubes of those shards down first
    ///   (else their running refuses the detach).
    /// - Throws: `LifecycleError`.
    public static func detach(
        _ names: [String]?, shutDown: Bool = false, dryRun: Bool = false, settings: LifecycleSettings
    ) throws -> LifecycleReport {
        let runtime = RuntimeFiles(paths: settings.paths)
        // The audit reads the runtime folder, the lock file too: it runs after the lock is released.
        let (done, leaving, main) = try refusing {
            try runtime.locked {
                guard let before = try runtime.record() else {
                    // At shutdown nothing attached is nothing to do.
                    if settings.boot { return (LifecycleReport(), [AttachedShard](), "") }
                    throw ShardIssue("no shard is attached", file: settings.paths.record)
                }
                var leaving = before.shards
                if let names {
                    leaving = try names.map { name in
                        guard let shard = before.shards.first(where: { $0.name == name }) else {
                            throw ShardIssue("no attached shard has this name", file: settings.paths.record, field: "name", value: name)
                        }
                        return shard
                    }
                }
                let remaining = before.shards.filter { !leaving.contains($0) }
                let after = remaining.isEmpty ? nil : ShardRecord(main: before.main, merged: before.merged, shards: remaining, options: before.options)
                var report = LifecycleReport()
                if !dryRun { try refuseAtBootWhileQubesdAnswers(settings) }
                if !dryRun, !settings.boot {
                    try settings.beforeStep(.checkRunning)
                    let running = try runningQubes(of: leaving.map(\.name), record: before, settings: settings)
                    if !running.isEmpty {
                        guard shutDown else {
                            throw ShardIssue(
                                "qubes of the shards are running: " + running.joined(separator: ", ") + "; shut them down or give --shutdown",
                                field: "running", value: running.joined(separator: " "))
                        }
                        try settings.beforeStep(.shutDown)
                        try shutDownQubes(running, settings: settings)
                        report.shutDown = running
                    }
                }
                var run = Run(settings: settings, before: before, after: after, dryRun: dryRun, report: report)
                try run.execute(into: &report)
                return (report, leaving, before.main)
            }
        }
        var report = done
        if !dryRun, !leaving.isEmpty {
            do {
                report.audit = try audit(leaving, main: main, settings: settings)
            } catch {
                report.audit = AuditReport(findings: [ShardIssue("the audit could not run: \(error)")])
            }
        }
        return report
    }

    /// What is attached now per the record in `paths` (nil: nothing).
    public static func record(_ paths: LifecyclePaths) throws -> ShardRecord? { try RuntimeFiles(paths: paths).record() }

    /// Runs `body`; an error before any change becomes a `LifecycleError` that changed nothing.
    static func refusing<Result>(_ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as LifecycleError {
            throw error
        } catch let issue as ShardIssue {
            throw LifecycleError(step: nil, message: issue.description, restoreErrors: [], changed: false)
        } catch {
            throw LifecycleError(step: nil, message: "\(error)", restoreErrors: [], changed: false)
        }
    }

    /// The running qubes (per qubesd) of the shards `names` (per the merged store's `shard-<name>` tags).
    static func runningQubes(of names: [String], record: ShardRecord, settings: LifecycleSettings) throws -> [String] {
        // No merged store: a detach removed it after the split, and qubesd knows no shard qube.
        guard try SystemFileSystem().info(of: record.merged) != nil else { return [] }
        let store = try Store.load(xml: StoreFile(path: record.merged).read().bytes).store
        let tags = Set(names.map { ExactString(ShardSanitizer.tag(ofShard: $0)) })
        let members = Set(store.domains.filter { !tags.isDisjoint(with: $0.tags) }.map { ExactString($0.name) })
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: settings.paths.socket, timeout: settings.timeout))
        return try backend.qubes().filter { members.contains(ExactString($0.name)) && $0.state.isStarted }.map(\.name)
    }

    /// Shuts `qubes` down through the Admin API and waits until none runs.
    static func shutDownQubes(_ qubes: [String], settings: LifecycleSettings) throws {
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: settings.paths.socket, timeout: settings.timeout))
        for qube in qubes { try backend.shutdown(qube, force: false, wait: false) }
        let deadline = Date().addingTimeInterval(settings.timeout)
        while true {
            let running = try backend.qubes().filter { qubes.contains($0.name) && $0.state.isStarted }.map(\.name)
            if running.isEmpty { return }
            guard Date() < deadline else {
                throw ShardIssue("still running after \(Int(settings.timeout)) s: " + running.joined(separator: ", "), field: "running")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// At boot or shutdown qubesd must be down: a socket that answers refuses the run.
    static func refuseAtBootWhileQubesdAnswers(_ settings: LifecycleSettings) throws {
        guard settings.boot else { return }
        try refuseWhileQubesdAnswers(settings, "qubesd is running: attach or detach without --boot")
    }

    /// Waits until qubesd answers `admin.vm.List` on its socket.
    static func waitForQubesd(_ settings: LifecycleSettings) throws {
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: settings.paths.socket, timeout: settings.timeout))
        let deadline = Date().addingTimeInterval(settings.timeout)
        while true {
            do {
                _ = try backend.qubes()
                return
            } catch {
                guard Date() < deadline else {
                    throw ShardIssue("qubesd does not answer after \(Int(settings.timeout)) s: \(error)", file: settings.paths.socket)
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// `lq shard audit` of the main store, the policy folder and the runtime folder for `shards`.
    static func audit(_ shards: [AttachedShard], main: String, settings: LifecycleSettings) throws -> AuditReport {
        try settings.beforeStep(.audit)
        let bytes = try StoreFile(path: main).read().bytes
        let store = try Store.load(xml: bytes).store
        let known = shards.compactMap { try? ShardFolder(root: $0.root).read().shard.get() }
        let (files, skipped) = try ShardFolder.scan([settings.paths.policyFolder, settings.paths.runtimeFolder])
        var report = ShardAudit.audit(main: store, mainPath: main, shards: known, scanned: [(main, bytes)] + files)
        report.information += skipped.map { "not scanned: \($0)" }
        return report
    }
}

/// One run of the planned actions, with the snapshot it restores on failure.
private struct Run {
    let settings: LifecycleSettings
    let before: ShardRecord?
    let after: ShardRecord?
    let dryRun: Bool
    var report: LifecycleReport
    /// The merged store just written, for the policy.
    var merged: Store?

    var runtime: RuntimeFiles { RuntimeFiles(paths: settings.paths) }

    /// Only the qubesd steps: `after` is attached already.
    let resume: Bool

    init(settings: LifecycleSettings, before: ShardRecord?, after: ShardRecord?, dryRun: Bool, report: LifecycleReport, resume: Bool = false) {
        (self.settings, self.before, self.after, self.dryRun, self.report, self.resume) = (settings, before, after, dryRun, report, resume)
    }

    /// Every file the run may change: the stores, the shard files, the policy file and the record.
    func touchedPaths() throws -> [String] {
        var paths = [before?.main, before?.merged, after?.main, after?.merged].compactMap { $0 }
        for root in Set((before?.shards ?? []) + (after?.shards ?? [])).map(\.root).sorted() {
            for file in try ShardFolder(root: root).filePaths() {
                paths += [file, String(file.dropLast(ShardFolder.fileName.count)) + ShardFolder.previousFileName]
            }
        }
        return paths + [settings.paths.policyFile, settings.paths.record]
    }

    mutating func execute(into result: inout LifecycleReport) throws {
        let actions = resume ? LifecycleAction.qubesd(on: after?.merged, boot: settings.boot) : LifecycleAction.plan(from: before, to: after, boot: settings.boot)
        report.steps = actions.map { $0.description(settings.paths) }
        defer { result = report }
        if dryRun { return }
        var snapshot = FileSnapshot()
        try snapshot.record(touchedPaths())
        for action in actions {
            do {
                try settings.beforeStep(action.step)
                try perform(action)
            } catch {
                throw LifecycleError(step: action.step, message: "\(error)", restoreErrors: restore(snapshot), changed: true)
            }
        }
    }

    /// Stops qubesd, puts the files back and starts qubesd on the previous store (at boot: points it there).
    func restore(_ snapshot: FileSnapshot) -> [String] {
        var errors: [String] = []
        if settings.boot {
            errors += snapshot.restore()
            do { try settings.qubesd.prepare(store: before?.merged) } catch { errors.append("point qubesd at the store: \(error)") }
            return errors
        }
        do { try settings.qubesd.stop() } catch { errors.append("stop qubesd: \(error)") }
        errors += snapshot.restore()
        do {
            try settings.qubesd.start(store: before?.merged)
            try ShardLifecycle.waitForQubesd(settings)
        } catch {
            errors.append("start qubesd: \(error)")
        }
        return errors
    }

    mutating func perform(_ action: LifecycleAction) throws {
        switch action {
        case .stopQubesd: try settings.qubesd.stop()
        case .split(let record):
            // Detach removes the merged store only after splitting it: not there, a detach stopped after its split.
            guard try SystemFileSystem().info(of: record.merged) != nil else {
                report.warnings.append("\(record.merged) is not there: split already (a detach stopped after splitting)")
                break
            }
            let (split, warnings) = try ShardLifecycle.split(record)
            report.warnings += warnings
            report.split = split
        case .merge(let record):
            let (options, errors) = record.options.mergeOptions()
            report.warnings += errors.map { "policy: \($0)" }
            let roots = record.shards.map(\.root)
            let result = try ShardMerge.merge(
                mainBytes: try StoreFile(path: record.main).read().bytes, shards: { roots.map { ShardFolder(root: $0).read() } },
                options: options)
            if let failed = result.report.shards.first(where: { $0.error != nil }), let error = failed.error { throw error }
            try runtime.writeMerged(result.bytes, to: record.merged)
            report.merge = result.report
            merged = result.store
        case .removeMerged(let path): try runtime.remove(path)
        case .installPolicy:
            let files = try ShardIsolationPolicy.files(for: merged ?? Store())
            try runtime.writePolicy(Array((files[ShardIsolationPolicy.fileName] ?? "").utf8))
        case .removePolicy: try runtime.remove(settings.paths.policyFile)
        case .writeRecord(let record): try runtime.write(record)
        case .removeRecord: try runtime.write(nil)
        case .startQubesd(let store): try settings.qubesd.start(store: store)
        case .pointQubesd(let store): try settings.qubesd.prepare(store: store)
        case .waitQubesd: try ShardLifecycle.waitForQubesd(settings)
        }
    }
}
