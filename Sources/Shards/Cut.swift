import OrderedCollections
import QubesStore

/// Makes shards from a store (for tests and benchmarks): moves chosen qubes,
/// with their data volumes in a pool of the shard's own, out of the store.
public enum ShardCutter {
    /// A store cut into a main store and shard files (canonical bytes).
    public struct Cut: Sendable {
        public var main: [UInt8]
        /// Shard name → shard file bytes.
        public var shards: [(name: String, bytes: [UInt8])]
        public var movedCount: Int
    }

    /// Qubes no other qube or global property refers to, whose volumes a shard may hold.
    public static func leaves(of store: Store) -> [Domain] {
        var referenced = Set<ExactString>()
        for (property, value) in store.globalProperties where Schema.global[property]?.kind == .qubeRef {
            referenced.insert(ExactString(value))
        }
        for domain in store.domains {
            for (property, value) in domain.properties where Schema.property(property, of: domain.vmClass)?.kind == .qubeRef {
                referenced.insert(ExactString(value))
            }
            for assignments in domain.devices.values {
                for device in assignments { referenced.insert(ExactString(device.backendDomain ?? "")) }
            }
        }
        return store.domains.filter { domain in
            ShardSanitizer.allowedClasses.contains(domain.vmClass) && !referenced.contains(ExactString(domain.name))
                && domain.volumes.allSatisfy { volume in
                    Volume.isTrue(volume.snapOnStart) || volume.name == "kernel"
                        || ((Volume.isTrue(volume.saveOnStop) || volume.name == "volatile")
                            && volume.vid.split(separator: "/").contains(Substring(domain.name)))
                }
        }
    }

    /// Deals up to `limit` leaf qubes round-robin into `count` shards named `s0`,
    /// `s1`, …, each with one `file-reflink` pool `sN-pool` under `/run/shards/sN`.
    public static func cut(_ store: Store, into count: Int, limit: Int = .max) throws -> Cut {
        var main = store
        var files = (0..<count).map { index in
            ShardFile(
                name: "s\(index)",
                pools: [
                    Pool(
                        name: "s\(index)-pool", driver: "file-reflink",
                        attributes: [
                            .init(name: "name", value: "s\(index)-pool"), .init(name: "dir_path", value: "/run/shards/s\(index)/pool"),
                            .init(name: "driver", value: "file-reflink"), .init(name: "revisions_to_keep", value: "1"),
                            .init(name: "ephemeral_volatile", value: "False"),
                        ])
                ])
        }
        let chosen = leaves(of: store).prefix(limit)
        for (index, domain) in chosen.enumerated() {
            var moved = domain
            moved.qid = 0
            for volumeIndex in moved.volumes.indices
            where Volume.isTrue(moved.volumes[volumeIndex].saveOnStop) || moved.volumes[volumeIndex].name == "volatile" {
                moved.volumes[volumeIndex].pool = "s\(index % count)-pool"
            }
            moved.tags = OrderedSet(moved.tags.sorted())
            files[index % count].domains.append(moved)
            main.remove(domain.name)
        }
        return Cut(
            main: try XMLWriter.write(main), shards: try files.map { ($0.name, try $0.bytes()) }, movedCount: chosen.count)
    }
}
