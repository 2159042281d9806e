import QubesAdmin
import QubesStore

/// `lq shard split` of what is attached, with the record's paths and options
/// (docs/shards.md, "Attach and detach").
extension ShardLifecycle {
    /// Splits the attached shards back into their main store and shard files
    /// as the record says they were merged; they stay attached.
    ///
    /// Holds the runtime lock, so it never runs beside attach or detach, and is
    /// refused while qubesd's socket answers: a running qubesd saves the merged
    /// store whenever it likes, and a split under it would miss the changes.
    /// - Returns: what split did, and the warnings from reading the policy.
    /// - Throws: `LifecycleError` that changed nothing when nothing is attached or qubesd runs.
    public static func splitAttached(settings: LifecycleSettings) throws -> (report: SplitReport, warnings: [String]) {
        let runtime = RuntimeFiles(paths: settings.paths)
        return try refusing {
            try runtime.locked {
                guard let record = try runtime.record() else {
                    throw ShardIssue("nothing is attached: give --merged, --main and the --shard folders", file: settings.paths.record)
                }
                try refuseWhileQubesdAnswers(settings, "qubesd is running and may save the merged store: stop it, or use lq shard detach")
                return try split(record)
            }
        }
    }

    /// Splits the merged store of `record` into its main store and shard files with the recorded options.
    static func split(_ record: ShardRecord) throws -> (report: SplitReport, warnings: [String]) {
        let (options, errors) = record.options.mergeOptions()
        let mergedBytes = try StoreFile(path: record.merged).read().bytes
        let previous = try Store.load(xml: StoreFile(path: record.main).read().bytes).store
        var result = try ShardSplit.split(
            mergedBytes: mergedBytes, previousMain: previous, shards: record.shards.map { ShardFolder(root: $0.root).read() },
            options: options)
        if let error = result.report.errors.first { throw error }
        result.report.written = try ShardSplit.write(result, main: StoreFile(path: record.main))
        return (result.report, errors.map { "policy: \($0)" })
    }

    /// Throws `message`, naming the socket, when qubesd answers on it.
    static func refuseWhileQubesdAnswers(_ settings: LifecycleSettings, _ message: String) throws {
        let backend = AdminAPIBackend(transport: AdminTransport(socketPath: settings.paths.socket, timeout: 2))
        if (try? backend.qubes()) != nil { throw ShardIssue(message, file: settings.paths.socket) }
    }
}
