import Foundation
import QrexecPolicy
import QubesAdmin
import QubesStore

/// Where attach and detach read and write; every path can be changed for tests.
public struct LifecyclePaths: Sendable {
    /// The runtime folder (tmpfs): the record, the lock, by default the merged store.
    public var runtimeFolder: String
    /// The runtime qrexec policy folder the isolation policy goes to.
    public var policyFolder: String
    /// qubesd's Admin API socket.
    public var socket: String

    public init(
        runtimeFolder: String = "/run/lq", policyFolder: String = "/run/qubes/policy.d",
        socket: String = AdminTransport.defaultSocket
    ) {
        (self.runtimeFolder, self.policyFolder, self.socket) = (runtimeFolder, policyFolder, socket)
    }

    /// The runtime record, `shards.json`.
    public var record: String { runtimeFolder + "/shards.json" }
    /// The isolation policy file (`20-lq-shards.policy`).
    public var policyFile: String { policyFolder + "/" + ShardIsolationPolicy.fileName }
    /// The main store qubesd reads when nothing is attached.
    public static let defaultMain = "/var/lib/qubes/qubes.xml"
    /// The merged store's default place, on tmpfs.
    public var defaultMerged: String { runtimeFolder + "/qubes.xml" }
}

/// A step of attach or detach, in the order they run. Tests make any one fail.
public enum LifecycleStep: String, Sendable, CaseIterable {
    case checkRunning = "check running qubes"
    case shutDown = "shut down shard qubes"
    case stopQubesd = "stop qubesd"
    case split = "split the attached shards"
    case merge = "merge the main store and the shards"
    case removeMerged = "remove the merged store"
    case installPolicy = "install the isolation policy"
    case removePolicy = "remove the isolation policy"
    case writeRecord = "write the record"
    case removeRecord = "remove the record"
    case startQubesd = "start qubesd"
    case pointQubesd = "point qubesd at the store"
    case waitQubesd = "wait for qubesd's socket"
    case audit = "audit the main store"
}

/// How attach and detach reach the system.
public struct LifecycleSettings: Sendable {
    public var paths: LifecyclePaths
    public var qubesd: any QubesdControl
    /// How long to wait for qubesd's socket, and for shard qubes to halt, in seconds.
    public var timeout: Double
    /// Boot and shutdown (the units, docs/shards.md "Boot and shutdown"): qubesd is not running, so it
    /// is neither stopped nor started, only pointed at the store it is to read when it starts; refused
    /// when its socket answers.
    public var boot: Bool
    /// Runs before each step; a test throws from it to fail that step.
    public var beforeStep: @Sendable (LifecycleStep) throws -> Void

    public init(
        paths: LifecyclePaths = LifecyclePaths(), qubesd: any QubesdControl = SystemdQubesd(), timeout: Double = 120,
        boot: Bool = false, beforeStep: @escaping @Sendable (LifecycleStep) throws -> Void = { _ in }
    ) {
        (self.paths, self.qubesd, self.timeout, self.boot, self.beforeStep) = (paths, qubesd, timeout, boot, beforeStep)
    }
}

/// What attach or detach did (or, for a dry run, would do).
public struct LifecycleReport: Sendable {
    /// The steps, in order, each with what it works on.
    public var steps: [String] = []
    public var split: SplitReport?
    public var merge: MergeReport?
    /// Shard qubes shut down first (detach `--shutdown`).
    public var shutDown: [String] = []
    /// The audit after detach.
    public var audit: AuditReport?
    /// Errors reading the policy (the tags it grants rights to may be incomplete).
    public var warnings: [String] = []
}

/// Attach or detach failed: at which step and why, and what restoring the
/// previous state gave.
public struct LifecycleError: Error, Sendable, CustomStringConvertible {
    /// The step that failed; nil when the input was refused before any step.
    public var step: LifecycleStep?
    public var message: String
    /// Errors while restoring; empty when the previous state is back and qubesd answers.
    public var restoreErrors: [String]
    /// Whether anything had been changed (false: refused before the first change).
    public var changed: Bool

    public var description: String {
        var text = (step.map { "\($0.rawValue): " } ?? "") + message
        if changed {
            text += restoreErrors.isEmpty
                ? "; the previous state is restored and qubesd runs on it"
                : "; restoring the previous state failed: " + restoreErrors.joined(separator: "; ")
        }
        return text
    }
}

/// One change of the dance, decided before anything is done.
enum LifecycleAction {
    case stopQubesd
    case split(ShardRecord)
    case merge(ShardRecord)
    case removeMerged(String)
    case installPolicy
    case removePolicy
    case writeRecord(ShardRecord)
    case removeRecord
    case startQubesd(store: String?)
    case pointQubesd(store: String?)
    case waitQubesd

    var step: LifecycleStep {
        switch self {
        case .stopQubesd: .stopQubesd
        case .split: .split
        case .merge: .merge
        case .removeMerged: .removeMerged
        case .installPolicy: .installPolicy
        case .removePolicy: .removePolicy
        case .writeRecord: .writeRecord
        case .removeRecord: .removeRecord
        case .startQubesd: .startQubesd
        case .pointQubesd: .pointQubesd
        case .waitQubesd: .waitQubesd
        }
    }

    func description(_ paths: LifecyclePaths) -> String {
        let roots = { (record: ShardRecord) in record.shards.map(\.root).joined(separator: " ") }
        switch self {
        case .stopQubesd: return "stop qubesd"
        case .split(let record): return "split \(record.merged) into \(record.main) and \(roots(record))"
        case .merge(let record): return "merge \(record.main) and \(roots(record)) into \(record.merged)"
        case .removeMerged(let path): return "remove \(path)"
        case .installPolicy: return "write \(paths.policyFile)"
        case .removePolicy: return "remove \(paths.policyFile)"
        case .writeRecord: return "write \(paths.record)"
        case .removeRecord: return "remove \(paths.record)"
        case .startQubesd(let store): return "start qubesd on \(store ?? "its own qubes.xml")"
        case .pointQubesd(let store): return "have qubesd read \(store ?? "its own qubes.xml") when it starts"
        case .waitQubesd: return "wait until \(paths.socket) answers"
        }
    }

    /// The changes that take the system from `before` to `after` (nil: nothing attached); at `boot`
    /// qubesd is down throughout.
    static func plan(from before: ShardRecord?, to after: ShardRecord?, boot: Bool) -> [LifecycleAction] {
        var actions: [LifecycleAction] = boot ? [] : [.stopQubesd]
        if let before { actions.append(.split(before)) }
        guard let after else {
            // The record goes last: a detach stopped before it is run again to its end (docs/shards.md).
            if let before { actions.append(.removeMerged(before.merged)) }
            return actions + [.removePolicy] + qubesd(on: nil, boot: boot) + [.removeRecord]
        }
        return actions + [.merge(after), .installPolicy, .writeRecord(after)] + qubesd(on: after.merged, boot: boot)
    }

    /// The last steps: qubesd started on `store` (nil: its own qubes.xml) and waited for; at `boot` pointed at it.
    static func qubesd(on store: String?, boot: Bool) -> [LifecycleAction] {
        boot ? [.pointQubesd(store: store)] : [.startQubesd(store: store), .waitQubesd]
    }
}
