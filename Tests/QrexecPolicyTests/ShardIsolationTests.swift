import QrexecPolicy
import QubesStore
import Testing

/// On a store with main qubes and two shards, the generated policy plus the
/// Qubes defaults allow or ask within a shard and deny across shards and
/// between shard and main, both ways, for every pair.
@Suite struct ShardIsolationTests {
    static let shardA = ["work", "vault"]
    static let shardB = ["standalone", "disp-browser"]

    static func store() throws -> Store {
        var store = try Store.load(xml: PolicyFixtures.bytes("stores/qubes-mini.xml")).store
        for name in shardA { store.update(name) { $0.tags.append(ExactString("shard-a")) } }
        for name in shardB { store.update(name) { $0.tags.append(ExactString("shard-b")) } }
        return store
    }

    static func evaluator() throws -> PolicyEvaluator {
        let store = try store()
        var files = try ShardIsolationPolicy.files(for: store).mapKeys { "/run/" + $0 }
        files["/etc/90-default.policy"] = try PolicyFixtures.text("shards/90-default.policy")
        let policy = try PolicyLoader(directories: ["/run", "/etc"], legacyDirectory: "/none",
                                      fileSystem: MemoryPolicyFiles(files)).policy()
        return PolicyEvaluator(policy: policy, system: try SystemInfo(store: store))
    }

    @Test func shardsAreFoundByTag() throws {
        #expect(ShardIsolationPolicy.shards(in: try Self.store()) == ["a", "b"])
    }

    @Test(arguments: ["qubes.Filecopy", "qubes.ClipboardPaste", "qubes.OpenInVM", "qubes.OpenURL", "qubes.VMShell"])
    func everyPair(_ service: String) throws {
        let matrix = PolicyMatrix(try Self.evaluator(), service: service)
        func shard(_ name: String) -> String? { Self.shardA.contains(name) ? "a" : Self.shardB.contains(name) ? "b" : nil }
        var checked = 0
        for source in matrix.sources where source != "dom0" {
            for target in matrix.sources where target != "dom0" && target != source {
                guard shard(source) != nil || shard(target) != nil else { continue }
                let decision = try #require(matrix[source, target])
                if shard(source) == shard(target) {
                    #expect(["allow", "ask"].contains(decision.name), "\(source) -> \(target): \(decision.summary)")
                } else {
                    #expect(decision.name == "deny", "\(source) -> \(target): \(decision.summary)")
                }
                checked += 1
            }
            // A shard qube asking for @default is offered only its own shard.
            if let own = shard(source), case .ask(let targets, _, _, _, _)? = matrix[source, "@default"]?.outcome {
                #expect(targets.allSatisfy { shard($0) == own }, "\(source) offered \(targets)")
            }
        }
        #expect(checked == 9 * 8 - 5 * 4)
    }

    @Test func noShardsGivesAHeaderOnlyFile() throws {
        let store = try Store.load(xml: PolicyFixtures.bytes("stores/qubes-mini.xml")).store
        let files = try ShardIsolationPolicy.files(for: store)
        #expect(files.keys.sorted() == ["20-lq-shards.policy"])
        #expect(files.values.allSatisfy { $0.split(separator: "\n").allSatisfy { $0.hasPrefix("#") } })
    }
}

extension Dictionary {
    func mapKeys(_ transform: (Key) -> Key) -> [Key: Value] {
        Dictionary(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
