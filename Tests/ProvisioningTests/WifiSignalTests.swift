import Foundation
import Testing

@testable import Provisioning

/// core-net's Wi-Fi signal reports (docs/liteqube.md, "Network qubes"): `liteqube-wifi-signal` run for
/// real by `sh`, with stand-ins for nmcli (one answer a minute, as NetworkManager's terse list would
/// give it), sleep (a minute passes; after the last answer it ends the run) and qrexec-client-vm.
@Suite struct WifiSignalTests {
    static let program = "/usr/lib/liteqube/liteqube-wifi-signal"

    /// The reports dom0 gets when nmcli answers `minutes` in turn.
    func reports(_ minutes: [String]) throws -> [String] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-wifi-signal-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        for (minute, answer) in minutes.enumerated() {
            try answer.write(toFile: "\(folder)/minute.\(minute)", atomically: false, encoding: .utf8)
        }
        try "0".write(toFile: folder + "/now", atomically: false, encoding: .utf8)
        let log = folder + "/log"
        try writeStandIns([
            "nmcli": "[ \"$*\" = '-t -f ACTIVE,SIGNAL device wifi list --rescan no' ] || exit 2\ncat \(folder)/minute.$(cat \(folder)/now)",
            "sleep": """
                [ "$1" = 60 ] || exit 2
                next=$(( $(cat \(folder)/now) + 1 ))
                [ "$next" -lt \(minutes.count) ] || kill "$PPID"
                echo "$next" > \(folder)/now
                """,
            "qrexec-client-vm": "printf '%s\\n' \"$*\" >> \(log)",
        ], in: folder + "/bin")
        let texts = try TemplateTextTests.texts(Manifest(components: [.base, .network]))
        try #require(texts.first { $0.path == Self.program }).text.write(toFile: folder + "/signal", atomically: false, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [folder + "/signal"]
        process.environment = ["PATH": folder + "/bin:/usr/bin:/bin"]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the loop ends only when the stand-in sleep stops it")
        guard FileManager.default.fileExists(atPath: log) else { return [] }
        return try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test func theSignalIsReportedWhenUpAndWhenItMovesTenPoints() throws {
        let minutes = ["no:40\nyes:72\nno:30\n", "yes:75\n", "yes:65\n", "yes:64\n", "yes:54\n", "no:80\n", "yes:20\n"]
        #expect(try reports(minutes) == ["dom0 liteqube.SignalWifi+SI-72", "dom0 liteqube.SignalWifi+SI-54", "dom0 liteqube.SignalWifi+SI-20"])
    }

    @Test func withoutWifiOrWithNonsenseNothingIsReported() throws {
        #expect(try reports(["", "yes:\n", "yes:101\n", "yes:7a\n", "yes:-5\n", "yes:1;reboot\n"]) == [])
    }
}
