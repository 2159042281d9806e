import QubesAdmin
import Foundation
import Glibc
import QubesStore
import Testing

@testable import Provisioning

/// The clock (docs/liteqube.md, "The clock"): core-tor's `liteqube-clock` run for real by `sh`,
/// fed Tor's log, with stand-ins for htpdate (answering as a clock that is right, a little off or far
/// off would be answered), setpriv, sleep and qrexec-client-vm, all writing to one log in order.
@Suite struct ClockTests {
    static let program = "/usr/lib/liteqube/liteqube-clock"
    static let skewed = "Our clock is 3 hours, 0 minutes behind the time published in the consensus network status document."
    static let netinfo = "Received NETINFO cell with skewed time (OR:192.0.2.1:443): It seems that our clock is behind by 3 hours, 0 minutes."
    static let connected = "Bootstrapped 100% (done): Done"

    /// Runs the clock script of `manifest` on `lines`; `answers` maps `onion` or `clearnet` to what
    /// htpdate prints (absent: it fails). Returns the log.
    func run(_ manifest: Manifest, _ lines: [String], answers: [String: String]) throws -> [String] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-clock-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        let log = folder + "/log"
        let script = try #require(try TemplateTextTests.texts(manifest).first { $0.path == Self.program }).text
        let standIns = [
            "htpdate": """
                printf 'htpdate %s\\n' "$*" >> \(log)
                case " $* " in *" -t "*) kind=clearnet ;; *) kind=onion ;; esac
                [ -f \(folder)/$kind ] || exit 1
                cat \(folder)/$kind
                """,
            "setpriv": "printf 'setpriv %s\\n' \"$*\" >> \(log)\nwhile [ \"$1\" != htpdate ]; do shift; done\nexec \"$@\"",
            "sleep": "printf 'sleep %s\\n' \"$*\" >> \(log)",
            "qrexec-client-vm": "printf 'qrexec %s\\n' \"$*\" >> \(log)",
        ]
        try writeStandIns(standIns, in: folder + "/bin")
        for (kind, answer) in answers { try answer.write(toFile: folder + "/" + kind, atomically: false, encoding: .utf8) }
        try script.write(toFile: folder + "/clock", atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [folder + "/clock"]
        process.environment = ["PATH": folder + "/bin:/usr/bin:/bin"]
        let input = Pipe()
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data(lines.map { $0 + "\n" }.joined().utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        guard FileManager.default.fileExists(atPath: log) else { return [] }
        return try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    static let manifest = Manifest(components: [.base, .network])
    static var onionCall: String { "htpdate -s " + manifest.timeTorServers.joined(separator: " ") }
    static var clearnetCall: String { "htpdate -s -t https://www.debian.org https://www.qubes-os.org https://www.torproject.org" }

    @Test func aGoodClockIsCheckedOverTorAndNothingIsReported() throws {
        let log = try run(Self.manifest, ["Bootstrapped 10% (conn_done): Connected to a relay", Self.connected],
                          answers: ["onion": "No time correction needed\n", "clearnet": "Setting 1.000 seconds\n"])
        #expect(log == [Self.onionCall])
    }

    @Test func aSmallOffsetIsCorrectedOverTorAndReported() throws {
        let log = try run(Self.manifest, [Self.connected], answers: ["onion": "Setting -42.517 seconds\nSet time: Sun Dec  6 01:00:00 2026\n"])
        #expect(log == [Self.onionCall, "qrexec dom0 liteqube.SignalTime+-42"])
    }

    /// Tor complains of the clock: the clearnet servers are asked once, as Tor's group, with no step
    /// limit; the repeated complaint does not ask again; once Tor connects the onions refine the time.
    @Test func aSkewedClockFallsBackToClearnetOnceThenTor() throws {
        let log = try run(Self.manifest, [Self.skewed, Self.netinfo, Self.connected],
                          answers: ["clearnet": "Setting 10800.250 seconds\n", "onion": "Setting 0.400 seconds\n"])
        #expect(log == [
            "setpriv --regid=debian-tor --clear-groups " + Self.clearnetCall, Self.clearnetCall,
            "qrexec dom0 liteqube.SignalTime+10800", Self.onionCall,
        ])
    }

    @Test func unreachableOnionsAreRetriedAndAnEmptyClearnetListIsNeverAsked() throws {
        var manifest = Self.manifest
        manifest.timeClearnetServers = []
        let log = try run(manifest, [Self.skewed, Self.connected], answers: ["clearnet": "Setting 5.000 seconds\n"])
        #expect(log == [Self.onionCall, "sleep 20", Self.onionCall, "sleep 20", Self.onionCall, "sleep 20"])
    }

    @Test func theServerListsAreTheManifests() throws {
        var manifest = Self.manifest
        let onion = String(repeating: "b3", count: 28) + ".onion"
        manifest.timeTorServers = [onion]
        manifest.timeClearnetServers = ["time.example.org"]
        let log = try run(manifest, [Self.netinfo, Self.connected], answers: [:])
        #expect(log.filter { $0.hasPrefix("htpdate") } == ["htpdate -s -t time.example.org", "htpdate -s " + onion, "htpdate -s " + onion, "htpdate -s " + onion])
    }

    /// The script passes shellcheck as the realistic root's check runs it (CI installs shellcheck).
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func theScriptPassesShellcheck() throws {
        let script = try #require(TemplateTextTests.texts(Self.manifest).first { $0.path == Self.program })
        #expect(try Shellcheck.passes(script.text))
    }

    /// `set_time: false`: core-tor stays the clockvm but sets nothing, and dom0 hears nothing of it.
    @Test func setTimeOffLeavesNoClockProgramAndNoService() throws {
        var manifest = Self.manifest
        manifest.setTime = false
        let texts = try TemplateTextTests.texts(manifest)
        #expect(!texts.contains { $0.path == Self.program || $0.path == "dom0:liteqube.SignalTime" })
        let rcLocal = try #require(texts.first { $0.path == "/etc/protect/template.core-tor/config/rc.local" }).text
        #expect(rcLocal.contains("# set_time: false") && !rcLocal.contains("liteqube-clock"))
        #expect(try TemplateTextTests.texts(Self.manifest).contains { $0.path == "dom0:liteqube.SignalTime" })

        let scratch = try Scratch()
        let original = try scratch.canonical()
        let backend = OfflineBackend(path: scratch.store, random: .seeded(3))
        let plan = try scratch.planner(backend).plan(manifest)
        try Applier(backend: backend, journalPath: scratch.journal).apply(plan) { _ in }
        let store = try Store.load(xml: [UInt8](try scratch.bytes(scratch.store))).store
        #expect(store.globalProperties["clockvm"] == "core-tor")
        #expect(!(try scratch.policyFiles().contains("liteqube.SignalTime")))
        let policy = try String(contentsOfFile: scratch.policy + "/45-liteqube.policy", encoding: .utf8)
        #expect(!policy.contains("SignalTime") && policy.contains("liteqube.SignalTor"))
        #expect(try scratch.planner(backend).plan(manifest).operations.isEmpty)
        try Applier(backend: backend, journalPath: scratch.journal).destroy()
        #expect(try scratch.canonical() == original)
    }
}
