import Foundation
import Testing

@testable import Provisioning

/// The units debian-core's dpkg hook keeps and masks, held against the real
/// Qubes VM agent (the snapshot in `../shared/upstream`): a Qubes unit lq
/// names must be one the agent ships, or one of the few other Qubes packages'.
@Suite struct AgentUnitsTests {
    static let upstream = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/upstream")

    static var agentTarball: String? {
        (try? FileManager.default.contentsOfDirectory(atPath: upstream.path))?
            .first { $0.hasPrefix("qubes-core-agent-linux-") && $0.hasSuffix(".tar.gz") }.map { upstream.path + "/" + $0 }
    }

    /// Units of other Qubes packages debian-core has (qubesdb, qrexec, the GUI agent, the meminfo writer).
    static let otherQubesUnits: Set<String> = ["qubes-db.service", "qubes-qrexec-agent.service", "qubes-meminfo-writer.service"]

    /// The unit files of the agent snapshot's `vm-systemd`.
    static func agentUnits() throws -> Set<String> {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/bin/tar")
        tar.arguments = ["-xzf", try #require(agentTarball), "-C", folder, "vm-systemd"]
        try tar.run()
        tar.waitUntilExit()
        #expect(tar.terminationStatus == 0)
        return Set(try FileManager.default.contentsOfDirectory(atPath: folder + "/vm-systemd"))
    }

    @Test(.enabled(if: agentTarball != nil, "the Qubes agent snapshot is not in ../shared/upstream"))
    func everyQubesUnitTheHookNamesExists() throws {
        let agent = try Self.agentUnits()
        #expect(agent.contains("qubes-bind-dirs.service") && agent.contains("dev-xvdc1-swap.service"), "\(agent.sorted())")
        for unit in Base.keptUnits + Base.maskedUnits where unit.hasPrefix("qubes-") || unit.hasPrefix("dev-xvdc") {
            #expect(agent.contains(unit) || Self.otherQubesUnits.contains(unit), "\(unit) is not a unit of Qubes 4.3")
        }
    }

    /// The agent enables qubes-bind-dirs.service through its preset, and nothing else pulls it in:
    /// the hook must keep its link, or the bind-dirs core-net and core-tor rely on are never mounted.
    @Test func theHookKeepsTheBindDirsUnit() {
        #expect(Base.keptUnits.contains("qubes-bind-dirs.service"))
    }
}
