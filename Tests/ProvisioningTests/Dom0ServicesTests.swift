import Foundation
import Testing

@testable import Provisioning

/// dom0's notification services, run for real by `sh` with stand-ins for
/// the display owner (`stat`) and `notify-send` (which records its argv).
@Suite struct Dom0ServicesTests {
    struct Run {
        var status: Int32
        /// notify-send's arguments, one per line; nil when it was not called.
        var notified: [String]?
    }

    static func run(_ service: String, argument: String, environment: Bool = false) throws -> Run {
        let scripts = Dictionary(try Dom0Service.all(Manifest()).map { ($0.name, $0.content) }, uniquingKeysWith: { first, _ in first })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-dom0-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let record = folder + "/notified"
        let standIns = [
            "stat": "#!/bin/sh\nid -un\n",
            "notify-send": "#!/bin/sh\nprintf '%s\\n' \"$@\" > \(record)\n",
        ]
        for (name, text) in standIns {
            try text.write(toFile: folder + "/bin/" + name, atomically: false, encoding: .utf8)
            chmod(folder + "/bin/" + name, 0o755)
        }
        let script = try #require(scripts[service])
        try script.write(toFile: folder + "/" + service, atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [folder + "/" + service] + (environment ? [] : [argument])
        process.environment = ["PATH": folder + "/bin:/usr/bin:/bin", "QREXEC_REMOTE_DOMAIN": "core-net"]
            .merging(environment ? ["QREXEC_SERVICE_ARGUMENT": argument] : [:]) { $1 }
        try process.run()
        process.waitUntilExit()
        let notified = try? String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map(String.init)
        return Run(status: process.terminationStatus, notified: notified)
    }

    static func shown(_ urgency: String, _ time: Int, _ icon: String, _ text: String) -> [String] {
        ["--urgency=\(urgency)", "--expire-time=\(time)", "--icon=\(icon)", "--", "core-net", text]
    }

    @Test func messagesShowTheArgumentWithSpacesAndTheCaller() throws {
        let run = try Self.run("liteqube.Message", argument: "Files_quarantined_during_boot")
        #expect(run.status == 0 && run.notified == Self.shown("normal", 2000, "dialog-information", "Files quarantined during boot"))
        let error = try Self.run("liteqube.Error", argument: "Boot_check_failed", environment: true)
        #expect(error.status == 0 && error.notified == Self.shown("critical", 5000, "dialog-error", "Boot check failed"))
    }

    @Test(arguments: [
        ("liteqube.SignalWifi", "ST-100", "Connected"), ("liteqube.SignalWifi", "AP-Home_Net", "Network: Home Net"),
        ("liteqube.SignalWifi", "EN-0", "Wi-Fi off"), ("liteqube.SignalTor", "100", "Tor connected"),
        ("liteqube.SignalTor", "200", "Tor disconnected"), ("liteqube.SignalStorage", "A_sda1_vfat_16G", "USB storage sda1: vfat, 16G"),
        ("liteqube.SignalStorage", "R_sdb", "USB storage sdb removed"),
    ])
    func reportsAreShownInWords(_ service: String, _ argument: String, _ text: String) throws {
        let run = try Self.run(service, argument: argument)
        #expect(run.status == 0)
        #expect(run.notified?.last == text && run.notified?.dropLast().last == "core-net")
    }

    @Test(arguments: [
        ("liteqube.SignalWifi", "ST-30", 0), ("liteqube.SignalWifi", "SI-70", 0), ("liteqube.SignalTor", "45", 0),
        ("liteqube.SignalWifi", "ST-", 1), ("liteqube.SignalWifi", "XX", 1), ("liteqube.SignalTor", "1x", 1),
        ("liteqube.SignalTor", "", 1), ("liteqube.SignalStorage", "A_sda", 1), ("liteqube.SignalStorage", "M_x", 1),
    ])
    func progressIsSilentAndAnythingElseRefused(_ service: String, _ argument: String, _ status: Int32) throws {
        let run = try Self.run(service, argument: argument)
        #expect(run.status == status && run.notified == nil, "\(argument)")
    }
}
