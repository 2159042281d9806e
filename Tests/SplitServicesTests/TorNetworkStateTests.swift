import Foundation
import Glibc
import LQCommon
import SplitServices
import SystemLayer
import Testing

/// Records Tor being stopped and started, and what its data folder held at each step.
final class FakeTor: TorControl, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [String] = []
    let dataFolder: String
    var failStart = false

    init(dataFolder: String) { self.dataFolder = dataFolder }

    var calls: [String] { lock.withLock { log } }

    func stop() throws(SplitError) { lock.withLock { log.append("stop") } }

    func start() throws(SplitError) {
        let state = (try? String(contentsOfFile: dataFolder + "/state", encoding: .utf8)) ?? "-"
        lock.withLock { log.append("start:\(state)") }
        if failStart { throw SplitError(.system, "systemctl start tor@default.service: exit 1") }
    }
}

@Suite(.timeLimit(.minutes(1))) struct TorNetworkStateTests {
    let folder: Folder
    let tor: FakeTor
    var state: TorNetworkState

    init() throws {
        folder = try Folder()
        try FileManager.default.createDirectory(atPath: folder.path + "/config", withIntermediateDirectories: true)
        try folder.file("var-lib-tor/state", "fresh guards")
        tor = FakeTor(dataFolder: folder.path + "/var-lib-tor")
        state = TorNetworkState(stateFolder: folder.path + "/config/tor", dataFolder: folder.path + "/var-lib-tor", tor: tor)
    }

    /// Tor's own writes while it runs on a network.
    func torWrites(_ guards: String) throws {
        try folder.file("var-lib-tor/state", guards)
        try folder.file("var-lib-tor/keys/secret_id_key", "key of \(guards)")
    }

    @Test func eachNetworkGetsItsOwnStateBack() throws {
        #expect(try state.select(Array("Home_WiFi".utf8)) == .switched(from: nil, to: "Home_WiFi"))
        #expect(folder.content("config/tor/ap") == "Home_WiFi\n")
        #expect(folder.mode("config/tor/ap") == 0o600)
        try torWrites("home guards")

        #expect(try state.select(Array("Cafe".utf8)) == .switched(from: "Home_WiFi", to: "Cafe"))
        #expect(folder.content("config/tor/var-lib/Home_WiFi/state") == "home guards")
        #expect(folder.content("config/tor/var-lib/Home_WiFi/keys/secret_id_key") == "key of home guards")
        #expect(folder.content("var-lib-tor/state") == nil, "a new network starts with no guards")
        try torWrites("cafe guards")

        #expect(try state.select(Array("Home_WiFi".utf8)) == .switched(from: "Cafe", to: "Home_WiFi"))
        #expect(folder.content("var-lib-tor/state") == "home guards")
        #expect(folder.content("var-lib-tor/keys/secret_id_key") == "key of home guards")
        #expect(folder.content("config/tor/var-lib/Cafe/state") == "cafe guards")
        #expect(tor.calls == ["stop", "start:-", "stop", "start:-", "stop", "start:home guards"])
        #expect(folder.mode("config/tor/var-lib") == 0o700)
        #expect(folder.mode("config/tor/var-lib/Cafe") == 0o700)
    }

    @Test func theSameNetworkAgainOnlyStartsTor() throws {
        _ = try state.select(Array("Home".utf8))
        try torWrites("home guards")
        #expect(try state.select(Array("Home".utf8)) == .kept("Home"))
        #expect(tor.calls == ["stop", "start:-", "start:home guards"])
        #expect(folder.content("var-lib-tor/state") == "home guards")
    }

    @Test func noNetworkStopsTorAndSavesWithoutPoweringOff() throws {
        _ = try state.select(Array("Home".utf8))
        try torWrites("home guards")
        #expect(try state.select([]) == .stopped("Home"))
        #expect(tor.calls == ["stop", "start:-", "stop"])
        #expect(folder.content("config/tor/ap") == nil)
        #expect(folder.content("config/tor/var-lib/Home/state") == "home guards")
    }

    @Test func saveAtShutdownKeepsTheCurrentNetworksState() throws {
        #expect(try state.saveCurrent() == nil, "nothing to save before any network")
        _ = try state.select(Array("Home".utf8))
        try torWrites("later guards")
        #expect(try state.saveCurrent() == "Home")
        #expect(folder.content("config/tor/var-lib/Home/state") == "later guards")
        #expect(folder.content("config/tor/ap") == "Home\n")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/config/tor/var-lib/.Home.new"))
    }

    @Test(arguments: ["..", ".", "../../etc", "a/b", "-rf", ".hidden", "two words", "x\0y", String(repeating: "n", count: 65)])
    func badNamesAreRefusedBeforeTorIsTouched(_ name: String) throws {
        #expect(throws: SplitError.self) { try state.select(Array(name.utf8)) }
        #expect(tor.calls.isEmpty)
        #expect(folder.content("var-lib-tor/state") == "fresh guards")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/config/tor"), "nothing is made for a refused name")
    }

    @Test func symlinksAndSpecialFilesInTorDataAreNotCopied() throws {
        try folder.file("outside/secret", "outside")
        _ = try state.select(Array("Home".utf8))
        try torWrites("home guards")
        try folder.symlink("var-lib-tor/link", to: folder.path + "/outside/secret")
        try folder.symlink("var-lib-tor/dirlink", to: folder.path + "/outside")
        #expect(mkfifo(folder.path + "/var-lib-tor/fifo", 0o600) == 0)
        _ = try state.select(Array("Cafe".utf8))
        let saved = try FileManager.default.contentsOfDirectory(atPath: folder.path + "/config/tor/var-lib/Home").sorted()
        #expect(saved == ["keys", "state"])
        #expect(folder.content("outside/secret") == "outside")
    }

    @Test func aPlantedSymlinkForTheSavedStateIsRefused() throws {
        try folder.file("outside/state", "attacker's guards")
        _ = try state.select(Array("Home".utf8))
        try FileManager.default.createDirectory(atPath: folder.path + "/config/tor/var-lib", withIntermediateDirectories: true)
        try folder.symlink("config/tor/var-lib/Cafe", to: folder.path + "/outside")
        #expect(try state.select(Array("Cafe".utf8)) == .switched(from: "Home", to: "Cafe"))
        #expect(folder.content("var-lib-tor/state") == nil, "the link is not followed: Cafe starts afresh")
        #expect(folder.content("outside/state") == "attacker's guards")
    }

    @Test func anInvalidRecordCountsAsNoNetwork() throws {
        try folder.file("config/tor/ap", "../../etc\n")
        try torWrites("unknown guards")
        #expect(try state.select(Array("Home".utf8)) == .switched(from: nil, to: "Home"))
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/config/etc"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path + "/config/tor/var-lib").isEmpty)
        #expect(folder.content("var-lib-tor/state") == nil, "state of an unknown network is not carried over")
    }

    @Test func oversizedStateIsRefusedAndTheSavedOneKept() throws {
        _ = try state.select(Array("Home".utf8))
        try torWrites("home guards")
        _ = try state.select(Array("Cafe".utf8))
        try folder.file("var-lib-tor/cached-microdescs", Array(repeating: 0x41, count: 2048))
        var small = state
        small.maxBytes = 1024
        #expect(throws: SplitError.self) { try small.saveCurrent() }
        let saved = try FileManager.default.contentsOfDirectory(atPath: folder.path + "/config/tor/var-lib").sorted()
        #expect(saved == ["Home"], "no partial copy is left or put in place")
        #expect(folder.content("config/tor/var-lib/Home/state") == "home guards")
    }
}
