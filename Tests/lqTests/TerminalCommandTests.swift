import Foundation
import Testing

/// `lq xterm` and `lq connect` through a stand-in `qvm-run` that records its arguments.
@Suite struct TerminalCommandTests {
    let folder: URL
    let qvmRun: String
    let recorded: String

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-xterm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        qvmRun = folder.appendingPathComponent("qvm-run").path
        recorded = folder.appendingPathComponent("arguments").path
        try "#!/bin/sh\nprintf '%s\\n' \"$@\" > \(recorded)\nexit ${QVM_RUN_STATUS:-0}\n".write(toFile: qvmRun, atomically: false, encoding: .utf8)
        chmod(qvmRun, 0o755)
    }

    func arguments() throws -> [String] {
        try String(contentsOfFile: recorded, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func xtermRunsTheCommandAsArgumentsAsRoot() throws {
        let result = try LQ.run("xterm", "core-net", "--qvm-run", qvmRun, "--", "nmcli", "device", "wifi", "connect", "Home; reboot")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try arguments() == [
            "--user", "root", "--no-gui", "--no-shell", "core-net", "--", "/usr/lib/liteqube/liteqube-xterm", "core-net",
            "nmcli", "device", "wifi", "connect", "Home; reboot",
        ])
        #expect(try LQ.run("xterm", "core-tor", "--qvm-run", qvmRun).status == 0)
        #expect(try arguments().suffix(2) == ["/usr/lib/liteqube/liteqube-xterm", "core-tor"], "no command: a login shell")
    }

    @Test func connectOpensNmtuiInTheNetworkQube() throws {
        #expect(try LQ.run("connect", "--qvm-run", qvmRun).status == 0)
        #expect(try arguments().suffix(3) == ["/usr/lib/liteqube/liteqube-xterm", "core-net", "nmtui"])
    }

    @Test func connectTakesTheNetworkQubeFromTheManifest() throws {
        let manifest = folder.appendingPathComponent("liteqube.yaml").path
        try "components: [base, network]\nnames: {net: lab-net}\n".write(toFile: manifest, atomically: false, encoding: .utf8)
        #expect(try LQ.run("connect", "-f", manifest, "--qvm-run", qvmRun).status == 0)
        #expect(try arguments().suffix(3) == ["/usr/lib/liteqube/liteqube-xterm", "lab-net", "nmtui"])
        try "components: [base]\nnames: {net: -bad}\n".write(toFile: manifest, atomically: false, encoding: .utf8)
        let refused = try LQ.run("connect", "-f", manifest, "--qvm-run", qvmRun)
        #expect(refused.status == 1 && refused.stderr.hasPrefix(manifest + ": line 2: names.net: '-bad'"), "\(refused.stderr)")
    }

    @Test func badQubesAndFailuresExitOneNamingTheQube() throws {
        let bad = try LQ.run("xterm", "-core", "--qvm-run", qvmRun)
        #expect(bad.status == 2, "an option-like qube name is a usage error")
        let invalid = try LQ.run("xterm", "core net", "--qvm-run", qvmRun)
        #expect(invalid.status == 1 && invalid.stderr.hasPrefix("core net: qube 'core net': "), "\(invalid.stderr)")
        #expect(!FileManager.default.fileExists(atPath: recorded), "qvm-run never ran")
        let missing = try LQ.run("xterm", "core-net", "--qvm-run", folder.appendingPathComponent("nowhere").path)
        #expect(missing.status == 1 && missing.stderr.contains("cannot run"), "\(missing.stderr)")
    }
}
