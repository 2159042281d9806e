import LQCommon
import QrexecPolicy
import QubesStore

/// The merge options as given on the command line, kept in the runtime
/// record so that split, detach and the boot units replay merge with them.
public struct ShardOptions: Codable, Sendable, Hashable {
    /// The qids of shard qubes, `[low, high]`.
    public var qidRange: [Int]
    public var allowDevices: [String]
    public var allowTags: [String]
    /// Policy folders read for tags that grant rights; empty for the two dom0 defaults.
    public var policyFolders: [String]

    public init(
        qidRange: ClosedRange<Int> = shardQIDRange, allowDevices: [String] = [], allowTags: [String] = [],
        policyFolders: [String] = []
    ) {
        self.qidRange = [qidRange.lowerBound, qidRange.upperBound]
        (self.allowDevices, self.allowTags, self.policyFolders) = (allowDevices, allowTags, policyFolders)
    }

    /// The merge options, with the tags the current policy grants rights to,
    /// and the policy errors met reading it.
    public func mergeOptions() -> (options: MergeOptions, policyErrors: [PolicyError]) {
        let load = PolicyLoader(directories: policyFolders.isEmpty ? PolicyLoader.defaultDirectories : policyFolders).load()
        let sanitize = SanitizeOptions(
            allowDevices: Set(allowDevices), allowTags: Set(allowTags), grantingTags: SanitizeOptions.grantingTags(of: load.policy))
        let range = qidRange.count == 2 && qidRange[0] <= qidRange[1] ? qidRange[0]...qidRange[1] : shardQIDRange
        return (MergeOptions(qidRange: range, sanitize: sanitize), load.errors)
    }
}

/// One attached shard: its folder and its name.
public struct AttachedShard: Codable, Sendable, Hashable {
    public var root: String
    public var name: String

    public init(root: String, name: String) { (self.root, self.name) = (root, name) }
}

/// What is attached now (docs/shards.md, "Attach and detach"): the runtime
/// record `/run/lq/shards.json`, on tmpfs, so nothing of it survives a reboot.
public struct ShardRecord: Codable, Sendable, Hashable {
    public var version = 1
    /// The main store split writes back to.
    public var main: String
    /// The merged store qubesd reads while shards are attached.
    public var merged: String
    /// The attached shards, in merge order.
    public var shards: [AttachedShard]
    public var options: ShardOptions

    public init(main: String, merged: String, shards: [AttachedShard], options: ShardOptions) {
        (self.main, self.merged, self.shards, self.options) = (main, merged, shards, options)
    }

    /// The record's bytes: canonical JSON.
    public func bytes() throws -> [UInt8] { try JSONValue(encoding: self).canonicalBytes() }

    /// The record in `bytes`.
    /// - Throws: `ShardIssue` naming `file` when it is not a record.
    public static func parse(_ bytes: [UInt8], file: String) throws -> ShardRecord {
        do {
            let record = try JSONReader.parse(bytes, file: file).decode(ShardRecord.self)
            guard record.version == 1 else { throw ShardIssue("unknown record version", file: file, field: "version", value: String(record.version)) }
            return record
        } catch let issue as ShardIssue {
            throw issue
        } catch {
            throw ShardIssue("not a shard record: \(error)", file: file)
        }
    }
}
