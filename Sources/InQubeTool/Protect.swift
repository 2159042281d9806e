import ArgumentParser
import BootProtect
import Glibc
import LQCommon
import QubesStore
import SystemLayer

/// What `lq protect` and the template's own `lq-protect` say about themselves.
public enum Protect {
    public static let abstract = "Check a qube's private volume against its rules: deploy templates, verify pins, quarantine the rest."
    public static let discussion = """
        Rules live in the template's read-only root: template.<qube>|ALL (content, symlink text, owner and \
        mode enforced), checksum.<qube>|ALL (sha256 and sha512 lines), whitelist.<qube>|ALL (type, owner and \
        mode), with .any_file and .any_dir markers, and settings.<qube> (KEY=VALUE). Nothing on the volume \
        is ever followed through a symlink. Offending entries go to QUARANTINE at the volume root \
        (deleted with QUARANTINE=No); dom0 is notified once when something was removed or failed.
        Exit status: 0 done, 1 when something could not be checked or fixed (or the volume failed), 2 usage.
        """
}

/// The boot-time guard of a qube's private volume (Liteqube's templating):
/// the options and the run, shared by `lq protect` and `lq-protect`.
public struct ProtectArguments: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("The mounted private volume (default /rw).", valueName: "dir")) var rw: String?
    @Option(help: ArgumentHelp(
        "The private volume's block device, mounted at --mount-point for the run; if it does not mount and its first 10 MiB are zero, it is formatted as Qubes would (ext4, no journal in a disposable) and templated at once.",
        valueName: "path")) var device: String?
    @Option(help: ArgumentHelp("Where --device is mounted.", valueName: "dir")) var mountPoint = "/mnt"
    @Option(help: ArgumentHelp("The rules folder.", valueName: "dir")) var rules = "/etc/protect"
    @Option(help: ArgumentHelp("The qube whose trees apply (default: QubesDB /name, else the hostname).", valueName: "name"))
    var qube: String?
    @Flag(help: "The volume is blank (first boot): do nothing.") var firstBoot = false
    @Flag(help: "Leave a blank --device to Qubes, unformatted: a first boot, templated from the next one.") var keepBlank = false
    @Flag(help: "Print what would be done; change nothing.") var dryRun = false
    @Flag(help: "Print the report as JSON.") var json = false

    public func validate() throws {
        if rw != nil && device != nil { throw ValidationError("Give --rw or --device, not both.") }
        if let qube, !isValidQubeName(qube) { throw ValidationError("Not a qube name: '\(displayName(Array(qube.utf8)))'.") }
    }

    public func run() throws {
        let system = HostSystem()
        guard let name = qube ?? Self.ownName(system) else {
            throw CommandFailure("lq protect: cannot tell the qube's name (no QubesDB, no hostname); give --qube")
        }
        let volume: PrivateVolume = device.map { .device($0, mountPoint: mountPoint) } ?? .folder(rw ?? "/rw")
        let format = device == nil || keepBlank ? nil : BlankVolumeFormat(journal: Self.qubesDB(system, "/type") != "DispVM")
        let report = BootProtect.run(
            volume: volume, rules: rules,
            options: ProtectOptions(qube: name, dryRun: dryRun, firstBoot: firstBoot, formatBlank: format),
            system: system, notifier: QrexecNotifier(service: "liteqube.Error", system: system))
        Tool.output(json ? Self.json(report).canonicalBytes() : Array(Self.text(report).utf8))
        for error in report.errors { Tool.error("lq protect: \(name): \(error)") }
        if let powerOff = report.powerOff, !dryRun {
            Tool.error("lq protect: \(name): POWEROFF=Yes: powering off \(powerOff == .now ? "now" : "in one minute")")
            _ = try? system.run("/sbin/shutdown", powerOff == .now ? ["-h", "now"] : ["-h", "+1"], input: [], outputLimit: 0)
        }
        if !report.errors.isEmpty || report.outcome == .failed { throw ExitCode(1) }
    }

    /// The qube's own name: `qubesdb-read /name`, else the hostname.
    static func ownName(_ system: HostSystem) -> String? {
        if let name = qubesDB(system, "/name"), isValidQubeName(name) { return name }
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return isValidQubeName(name) ? name : nil
    }

    static let qubesDBRead = "/usr/bin/qubesdb-read"

    /// The first line of a QubesDB key, `nil` without QubesDB or the key.
    static func qubesDB(_ system: HostSystem, _ key: String) -> String? {
        guard access(qubesDBRead, X_OK) == 0, let result = try? system.run(qubesDBRead, [key], input: [], outputLimit: 64),
            result.status == 0
        else { return nil }
        return String(decoding: result.output.prefix { $0 != 0x0A }, as: UTF8.self)
    }

    /// One line per action: `quarantined|deleted|deployed|fixed PATH (RULE): DETAIL` (`would quarantine` …
    /// in a dry run), then a summary.
    public static func text(_ report: ProtectReport) -> String {
        var lines: [String] = report.formatted.map { ["formatted \($0) (a blank volume, as Qubes formats it)"] } ?? []
        let lists = [
            ("quarantine", "quarantined", report.quarantined), ("delete", "deleted", report.deleted),
            ("deploy", "deployed", report.deployed), ("fix", "fixed", report.fixed),
        ]
        for (verb, past, entries) in lists {
            for entry in entries { lines.append("\(report.dryRun ? "would " + verb : past) \(entry)") }
        }
        switch report.outcome {
        case .checked: lines.append("\(report.qube): \(report.summary)")
        case .inactive: lines.append("\(report.qube): ACTIVE=No; nothing done")
        case .firstBoot: lines.append("\(report.qube): first boot (blank volume); nothing done")
        case .failed: lines.append("\(report.qube): the volume was not checked")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `{"qube", "dry_run", "outcome", "deployed", "fixed", "quarantined", "deleted", "errors"}`.
    public static func json(_ report: ProtectReport) -> JSONValue {
        let entries: ([ReportEntry]) -> JSONValue = { list in
            .array(list.map { .object(["path": .string($0.path.description), "rule": .string($0.rule), "detail": .string($0.detail)]) })
        }
        let errors = JSONValue.array(report.errors.map { error in
            .object([
                "code": .string(error.code.rawValue), "path": error.path.map(JSONValue.string) ?? .null,
                "rule": error.rule.map(JSONValue.string) ?? .null, "message": .string(error.message),
            ])
        })
        return .object([
            "qube": .string(report.qube), "dry_run": .bool(report.dryRun), "outcome": .string(report.outcome.rawValue),
            "power_off": report.powerOff.map { .string($0.rawValue) } ?? .null,
            "formatted": report.formatted.map(JSONValue.string) ?? .null,
            "deployed": entries(report.deployed), "fixed": entries(report.fixed), "quarantined": entries(report.quarantined),
            "deleted": entries(report.deleted), "errors": errors,
        ])
    }
}
