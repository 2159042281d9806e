import AdminServer
import Foundation
import QubesAdmin
import QubesStore
import Testing
import TestSupport

@testable import Shards

/// qubesd stood in by the test Admin API server: stopping stops the server,
/// starting serves the store it is told to read, or the main store.
final class TestQubesd: QubesdControl, @unchecked Sendable {
    let folder: String
    let main: String
    let power: RunningQubes
    private let lock = NSLock()
    private var server: AdminSocketServer?
    private(set) var store: String?

    init(folder: String, main: String, power: RunningQubes = RunningQubes()) {
        (self.folder, self.main, self.power) = (folder, main, power)
    }

    func stop() throws {
        lock.withLock {
            server?.stop()
            server = nil
        }
    }

    func start(store: String?) throws {
        try lock.withLock {
            guard server == nil else { return }
            server = try AdminSocketServer(directory: folder, backend: OfflineBackend(path: store ?? main), mode: .powered(power))
            self.store = store
        }
    }

    /// At boot: the store to serve at the next start, without starting.
    func prepare(store: String?) throws { lock.withLock { self.store = store } }

    /// The store the next start serves, as the last start or prepare set it (nil: the main store).
    var prepared: String? { lock.withLock { store } }

    /// The store the running server serves (nil: none runs).
    var serving: String? { lock.withLock { server == nil ? nil : store ?? main } }
}

/// A dom0 in a temporary folder: the default-2x2 main store and shards, the
/// runtime folders and a running qubesd on the main store.
struct Dom0 {
    let root: URL
    let qubesd: TestQubesd

    init() throws {
        root = try Scratch.folder("lq-lifecycle")
        try FileManager.default.copyItem(at: Fixtures.root.appendingPathComponent("default-2x2"), to: root.appendingPathComponent("d"))
        // The main store as qubesd saves it.
        let main = try Store.load(xml: Fixtures.bytes("default-2x2/main.xml")).store
        try Data(try XMLWriter.write(main)).write(to: root.appendingPathComponent("d/main.xml"))
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sock"), withIntermediateDirectories: true)
        qubesd = TestQubesd(folder: root.path + "/sock", main: root.path + "/d/main.xml")
        try qubesd.start(store: nil)
    }

    func path(_ relative: String) -> String { root.path + "/" + relative }
    var main: String { path("d/main.xml") }
    var s0: String { path("d/s0") }
    var s1: String { path("d/s1") }

    func settings(failing step: LifecycleStep? = nil, boot: Bool = false) -> LifecycleSettings {
        LifecycleSettings(
            paths: LifecyclePaths(runtimeFolder: path("run/lq"), policyFolder: path("run/qubes/policy.d"), socket: path("sock/qubesd.sock")),
            qubesd: qubesd, timeout: 10, boot: boot,
            beforeStep: { if $0 == step { throw ShardIssue("injected failure") } })
    }

    /// The options: no policy folder, so no tag is withheld for granting rights.
    var options: ShardOptions { ShardOptions(policyFolders: [path("no-policy")]) }

    /// Every file attach and detach may change, by path, with its bytes (nil: absent).
    func files() -> [String: Data?] {
        let paths = ["d/main.xml", "d/s0/domains.xml", "d/s0/domains.xml.prev", "d/s1/domains.xml", "d/s1/domains.xml.prev",
                     "run/lq/qubes.xml", "run/lq/shards.json", "run/qubes/policy.d/20-lq-shards.policy"]
        return Dictionary(uniqueKeysWithValues: paths.map { ($0, FileManager.default.contents(atPath: path($0))) })
    }

    /// The qubes the running qubesd lists.
    func listed() throws -> Set<String> {
        Set(try AdminAPIBackend(transport: AdminTransport(socketPath: path("sock/qubesd.sock"), timeout: 5)).qubes().map(\.name))
    }

    func remove() {
        try? qubesd.stop()
        try? FileManager.default.removeItem(at: root)
    }
}

@Suite(.serialized) struct LifecycleTests {
    @Test func attachThenDetachGivesBackEveryFileAndThePolicyLivesOnlyWhileAttached() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        let before = dom0.files()
        let attached = try ShardLifecycle.attach([dom0.s0, dom0.s1], main: dom0.main, options: dom0.options, settings: dom0.settings())
        #expect(attached.merge?.shards.map(\.merged) == [["anon-whonix", "untrusted"], ["vault", "work"]])
        #expect(dom0.qubesd.serving == dom0.path("run/lq/qubes.xml"))
        #expect(try dom0.listed().isSuperset(of: ["anon-whonix", "untrusted", "vault", "work", "personal"]))
        let policy = try String(contentsOfFile: dom0.path("run/qubes/policy.d/20-lq-shards.policy"), encoding: .utf8)
        #expect(policy.contains("@tag:shard-s0") && policy.contains("@tag:shard-s1"))
        let record = try ShardRecord.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dom0.path("run/lq/shards.json")))), file: "r")
        #expect(record.shards == [AttachedShard(root: dom0.s0, name: "s0"), AttachedShard(root: dom0.s1, name: "s1")])
        let mode = try FileManager.default.attributesOfItem(atPath: dom0.path("run/lq/shards.json"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let detached = try ShardLifecycle.detach(nil, settings: dom0.settings())
        #expect(detached.audit?.findings == [])
        #expect(dom0.qubesd.serving == dom0.main)
        #expect(try dom0.listed().isDisjoint(with: ["anon-whonix", "untrusted", "vault", "work"]))
        #expect(dom0.files() == before)
    }

    @Test func changesMadeWhileAttachedGoHome() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        _ = try ShardLifecycle.attach([dom0.s0, dom0.s1], main: dom0.main, options: dom0.options, settings: dom0.settings())
        let api = AdminAPIBackend(transport: AdminTransport(socketPath: dom0.path("sock/qubesd.sock"), timeout: 5))
        try api.setProperty("memory", of: "work", to: "777")
        try api.setFeature("service.cups", to: "1", of: "personal")
        let detached = try ShardLifecycle.detach(["s1"], settings: dom0.settings())
        #expect(detached.audit?.findings == [])
        #expect(try String(contentsOfFile: dom0.path("d/s1/domains.xml"), encoding: .utf8).contains("<property name=\"memory\">777</property>"))
        #expect(dom0.qubesd.serving == dom0.path("run/lq/qubes.xml"))
        #expect(try dom0.listed().isSuperset(of: ["anon-whonix", "untrusted"]) && !dom0.listed().contains("work"))
        let policy = try String(contentsOfFile: dom0.path("run/qubes/policy.d/20-lq-shards.policy"), encoding: .utf8)
        #expect(policy.contains("@tag:shard-s0") && !policy.contains("shard-s1"))
        _ = try ShardLifecycle.detach(["s0"], settings: dom0.settings())
        let main = try Store.load(xml: Array(try Data(contentsOf: URL(fileURLWithPath: dom0.main)))).store
        #expect(main["personal"]?.features["service.cups"] == "1")
        #expect(main["untrusted"] == nil && main["work"] == nil)
        #expect(!FileManager.default.fileExists(atPath: dom0.path("run/qubes/policy.d/20-lq-shards.policy")))
        #expect(!FileManager.default.fileExists(atPath: dom0.path("run/lq/qubes.xml")))
    }

    /// `lq shard split` with nothing given: refused while qubesd answers or when nothing is attached;
    /// with qubesd stopped it writes the changes home as the record says, and the shards stay attached.
    @Test func splitOfTheAttachedShardsUsesTheRecordAndWaitsForQubesdToStop() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        #expect(throws: LifecycleError.self) { try ShardLifecycle.splitAttached(settings: dom0.settings()) }
        _ = try ShardLifecycle.attach([dom0.s0, dom0.s1], main: dom0.main, options: dom0.options, settings: dom0.settings())
        let api = AdminAPIBackend(transport: AdminTransport(socketPath: dom0.path("sock/qubesd.sock"), timeout: 5))
        try api.setProperty("memory", of: "work", to: "777")
        let attached = dom0.files()
        let refusal = #expect(throws: LifecycleError.self) { try ShardLifecycle.splitAttached(settings: dom0.settings()) }
        #expect(refusal?.description.contains("qubesd is running") == true)
        #expect(dom0.files() == attached)
        try dom0.qubesd.stop()
        let (report, _) = try ShardLifecycle.splitAttached(settings: dom0.settings())
        #expect(report.errors.isEmpty)
        #expect(try String(contentsOfFile: dom0.path("d/s1/domains.xml"), encoding: .utf8).contains("<property name=\"memory\">777</property>"))
        let after = dom0.files()
        for file in ["d/main.xml", "run/lq/qubes.xml", "run/lq/shards.json", "run/qubes/policy.d/20-lq-shards.policy"] {
            #expect(after[file] == attached[file], "\(file)")
        }
    }

    /// Every step of attach (with nothing or one shard attached) and of detach (one of two, or all with a
    /// qube to shut down) fails once: every file is as before and qubesd serves the previous store.
    @Test(arguments: LifecycleStep.allCases)
    func aFailureAtAnyStepRestoresThePreviousState(_ step: LifecycleStep) throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        let dance: Set<LifecycleStep> = [.stopQubesd, .split, .merge, .installPolicy, .writeRecord, .startQubesd, .waitQubesd]
        let changes: [(attached: [String], steps: Set<LifecycleStep>, change: (LifecycleSettings) throws -> LifecycleReport)] = [
            ([], dance.subtracting([.split]), { try ShardLifecycle.attach([dom0.s0], main: dom0.main, options: dom0.options, settings: $0) }),
            ([dom0.s0], dance.union([.checkRunning]), { try ShardLifecycle.attach([dom0.s1], options: dom0.options, settings: $0) }),
            ([dom0.s0, dom0.s1], dance.union([.checkRunning]), { try ShardLifecycle.detach(["s0"], settings: $0) }),
            ([dom0.s0], [.checkRunning, .shutDown, .stopQubesd, .split, .removeMerged, .removePolicy, .removeRecord, .startQubesd, .waitQubesd],
             { try ShardLifecycle.detach(nil, shutDown: true, settings: $0) }),
        ]
        for (attached, steps, change) in changes {
            if !attached.isEmpty {
                _ = try ShardLifecycle.attach(attached, main: dom0.main, options: dom0.options, settings: dom0.settings())
            }
            // A main qube runs throughout; a shard qube only where detach is to shut it down.
            dom0.qubesd.power.set(steps.contains(.shutDown) ? ["untrusted", "personal"] : ["personal"])
            let (files, serving, listed) = (dom0.files(), dom0.qubesd.serving, try dom0.listed())
            do {
                let report = try change(dom0.settings(failing: step))
                #expect(!steps.contains(step), "\(attached): no failure at \(step)")
                // A failed audit is a finding of a detach that is done.
                #expect(report.audit.map { $0.findings.isEmpty == (step != .audit) } ?? true)
            } catch let error as LifecycleError {
                #expect(steps.contains(step), "\(attached): \(error)")
                #expect(error.restoreErrors == [], "\(error)")
                #expect(dom0.files() == files, "\(attached) failing at \(step): \(error)")
                #expect(dom0.qubesd.serving == serving)
                #expect(try dom0.listed() == listed)
            }
            if FileManager.default.fileExists(atPath: dom0.path("run/lq/shards.json")) {
                _ = try ShardLifecycle.detach(nil, shutDown: true, settings: dom0.settings())
            }
            let main = try Store.load(xml: Array(try Data(contentsOf: URL(fileURLWithPath: dom0.main)))).store
            #expect(main.domains.allSatisfy { !$0.tags.contains { $0.value.hasPrefix("shard-") } && $0.qid < 8000 })
        }
    }

    @Test func detachRefusesWhileAShardQubeRunsAndShutdownStopsExactlyThose() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        _ = try ShardLifecycle.attach([dom0.s0, dom0.s1], main: dom0.main, options: dom0.options, settings: dom0.settings())
        let power = dom0.qubesd.power
        power.set(["untrusted", "work", "personal"])
        let attached = dom0.files()
        let refused = #expect(throws: LifecycleError.self) { try ShardLifecycle.detach(["s0"], settings: dom0.settings()) }
        #expect(refused?.changed == false && refused?.description.contains("untrusted") == true)
        #expect(refused?.description.contains("work") == false)
        #expect(dom0.files() == attached)
        let refusedAttach = #expect(throws: LifecycleError.self) { try ShardLifecycle.attach([dom0.path("none")], settings: dom0.settings()) }
        #expect(refusedAttach?.changed == false)
        let detached = try ShardLifecycle.detach(["s0"], shutDown: true, settings: dom0.settings())
        #expect(detached.shutDown == ["untrusted"])
        #expect(power.shutDown == ["untrusted"] && power.running == ["work", "personal"])
        #expect(detached.audit?.findings == [])
    }

    @Test func dryRunPrintsTheStepsAndChangesNothing() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        let before = dom0.files()
        let report = try ShardLifecycle.attach([dom0.s0], main: dom0.main, options: dom0.options, dryRun: true, settings: dom0.settings())
        #expect(report.steps == [
            "stop qubesd", "merge \(dom0.main) and \(dom0.s0) into \(dom0.path("run/lq/qubes.xml"))",
            "write \(dom0.path("run/qubes/policy.d/20-lq-shards.policy"))", "write \(dom0.path("run/lq/shards.json"))",
            "start qubesd on \(dom0.path("run/lq/qubes.xml"))", "wait until \(dom0.path("sock/qubesd.sock")) answers",
        ])
        #expect(dom0.files() == before)
    }
}
