import QubesStore

/// `lq shard check`: what merge would refuse or change in a shard, found
/// without the main store (so labels, templates and name conflicts with
/// main-store qubes are not checked).
public enum ShardCheck {
    /// Every problem and every change merge would make, each naming file, qube, field and value.
    public static func check(_ shard: Shard, options: SanitizeOptions = SanitizeOptions()) -> [ShardIssue] {
        var issues = shard.documents.flatMap(\.file.notices)
        var rules = ShardRules(main: Store())
        rules.standalone = true
        for document in shard.documents {
            for pool in document.file.pools {
                if pool.driver == "file" {
                    // docs/shards.md, "create-snapshot": the file driver is deprecated and attaches every image read-write.
                    issues.append(ShardIssue(
                        "warning: the file driver is deprecated (it attaches every image read-write through create-snapshot); "
                            + "use file-reflink", file: document.path, field: "pool." + pool.name + ".driver", value: pool.driver))
                }
                do throws(ShardIssue) {
                    try rules.checkPool(pool, taken: Set(rules.shardPools.keys))
                    rules.shardPools[pool.name] = pool
                } catch {
                    var issue = error
                    issue.file = document.path
                    issues.append(issue)
                }
            }
        }
        var names = Set<ExactString>()
        var uuids = Set<String>()
        var vids = Set<VolumeKey>()
        for (index, domain) in shard.domains {
            let file = shard.documents[index].path
            do throws(ShardIssue) {
                try rules.checkIdentity(domain)
                guard names.insert(ExactString(domain.name)).inserted else {
                    throw ShardIssue("another qube of the shard has the same name", qube: domain.name, field: "name", value: domain.name)
                }
                guard uuids.insert(domain.uuid).inserted else {
                    throw ShardIssue("another qube of the shard has the same uuid", qube: domain.name, field: "uuid", value: domain.uuid)
                }
                var copy = domain
                try rules.checkVolumes(&copy, templateRecovered: false, available: { _ in nil }, vids: &vids)
            } catch {
                var issue = error
                issue.file = file
                issues.append(issue)
            }
            for change in ShardSanitizer.sanitize(domain, shard: shard.name, options: options).1 {
                issues.append(
                    ShardIssue("merge would withhold this", file: file, qube: change.qube, field: change.field, value: change.old))
            }
        }
        return issues
    }
}
