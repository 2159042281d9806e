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
    /// How to format a blank device before templating it; `nil`: a blank device is a first boot,
    /// left to Qubes (docs/boot-guard.md, "First boot").
    public var formatBlank: BlankVolumeFormat?

    public init(
        qube: String, dryRun: Bool = false, firstBoot: Bool = false, maxFileSize: Int = 256 << 20,
        formatBlank: BlankVolumeFormat? = nil
    ) {
        self.qube = qube
        self.dryRun = dryRun
        self.firstBoot = firstBoot
        self.maxFileSize = maxFileSize
        self.formatBlank = formatBlank
    }
}

/// The file system Qubes' `setup-rwdev.sh` makes on a blank private volume, made by the guard
/// instead so that templating starts on that very boot (docs/boot-guard.md, "First boot").
public struct BlankVolumeFormat: Sendable, Hashable {
    /// A journal, except in a disposable (Qubes leaves it out there: the volume never outlives a boot).
    public var journal: Bool
    public var program: String

    public init(journal: Bool, program: String = "/sbin/mkfs.ext4") {
        self.journal = journal
        self.program = program
    }

    /// `mkfs.ext4 -m 0 -q -O [^]has_journal DEVICE`, as `setup-rwdev.sh` runs it.
    func arguments(device: String) -> [String] {
        ["-m", "0", "-q", "-O", journal ? "has_journal" : "^has_journal", device]
    }
}

/// Where the private volume is.
public enum PrivateVolume: Sendable, Hashable {
    /// An already mounted folder (`/rw`, or a test folder).
    case folder(String)
    /// A block device the guard mounts at `mountPoint` and unmounts afterwards; a blank device
    /// (see `BootProtect.isBlank`) is formatted first, or is a first boot.
    case device(String, mountPoint: String)
}

public enum BootProtect {
    /// Mounts the private volume; a blank one is first formatted when `options.formatBlank` says how
    /// (not in a dry run), else it is a first boot. `false`: the report says why there is nothing to check.
    static func mountDevice(
        _ device: String, at mountPoint: String, options: ProtectOptions, settings: Settings, system: any SystemCalls,
        report: inout ProtectReport
    ) -> Bool {
        let firstError: SystemError
        do {
            try system.mount(device, at: mountPoint)
            return true
        } catch {
            firstError = error
        }
        let prefix = (try? system.readPrefix(device, count: blankPrefix)) ?? [1]
        guard !prefix.isEmpty && prefix.allSatisfy({ $0 == 0 }) else {
            report.outcome = .failed
            report.powerOff = settings.powerOff ? .now : nil
            report.errors.append(ProtectError(.mount, "cannot mount and not blank: \(firstError)", path: device))
            return false
        }
        guard let format = options.formatBlank, !options.dryRun else {
            report.outcome = .firstBoot
            report.powerOff = settings.powerOff ? .inOneMinute : nil
            return false
        }
        do {
            let result = try system.run(format.program, format.arguments(device: device), input: [], outputLimit: 4096)
            guard result.status == 0 else {
                let output = String(decoding: result.output, as: UTF8.self)
                throw ProtectError(.mount, "cannot format the blank volume: \(format.program) exited with \(result.status): \(output)", path: device)
            }
            report.formatted = device
            try system.mount(device, at: mountPoint)
            return true
        } catch let error as ProtectError {
            report.errors.append(error)
        } catch {
            report.errors.append(ProtectError(.mount, "cannot \(report.formatted == nil ? "format" : "mount") the blank volume: \(error)", path: device))
        }
        report.outcome = .failed
        report.powerOff = settings.powerOff ? .now : nil
        return false
    }

    /// How many leading bytes of an unmountable device must be zero for it to be blank (all of a
    /// smaller one): what Qubes' `setup-rwdev.sh` checks before it formats the volume.
    public static let blankPrefix = 10 << 20

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
            guard mountDevice(device, at: mountPoint, options: options, settings: settings, system: system, report: &report) else {
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
