import QubesStore

/// `lq shard rename`: renames a qube inside a shard while the shard is not merged.
public enum ShardRename {
    /// Renames `old` to `new` in `shard`: the qube's name, the vids of its
    /// snapshot volumes (recreated at each start) and every reference to it
    /// from the shard's qubes. Data volumes keep their vids.
    /// - Returns: the shard files that change, as split would write them.
    /// - Throws: `ShardIssue` when `old` is not in the shard, or `new` is invalid or taken.
    public static func rename(_ old: String, to new: String, in shard: Shard) throws -> [SplitOutput] {
        do {
            try Store.validateQubeName(new)
        } catch let error as StoreError {
            throw ShardIssue(error.message, file: shard.root, qube: old, field: "name", value: new)
        }
        let domains = shard.domains.map(\.domain)
        guard domains.contains(where: { ExactString($0.name) == ExactString(old) }) else {
            throw ShardIssue("no such qube in the shard", file: shard.root, qube: old, field: "name", value: old)
        }
        guard !domains.contains(where: { ExactString($0.name) == ExactString(new) }) else {
            throw ShardIssue("the shard already has a qube of that name", file: shard.root, qube: old, field: "name", value: new)
        }
        var outputs: [SplitOutput] = []
        for document in shard.documents {
            var file = document.file
            for index in file.domains.indices { rename(old, to: new, in: &file.domains[index]) }
            let bytes = try file.bytes()
            if bytes != document.bytes { outputs.append(SplitOutput(path: document.path, bytes: bytes, previous: document.bytes)) }
        }
        return outputs
    }

    private static func rename(_ old: String, to new: String, in domain: inout Domain) {
        if ExactString(domain.name) == ExactString(old) {
            domain.name = new
            for index in domain.volumes.indices where Volume.isTrue(domain.volumes[index].snapOnStart) {
                domain.volumes[index].vid = domain.volumes[index].vid.split(separator: "/", omittingEmptySubsequences: false)
                    .map { $0 == old ? new : String($0) }.joined(separator: "/")
            }
        }
        for (property, value) in domain.properties
        where value == old && Schema.property(property, of: domain.vmClass)?.kind == .qubeRef {
            domain.properties[property] = new
        }
    }
}
