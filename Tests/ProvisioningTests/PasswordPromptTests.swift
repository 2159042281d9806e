import Foundation
import Glibc
import Testing

@testable import Provisioning

/// dom0's password prompt (docs/split-services.md, "dom0's password prompt"): the generated
/// `liteqube.SplitPassword` run for real as qrexec runs it, with stand-ins for the display owner
/// (`stat`), the dialogs (`zenity` or `kdialog`, answering as the user would), `notify-send` and
/// `lq` (which records its argv and stdin); `setsid` is the real one.
@Suite struct PasswordPromptTests {
    static var manifest: Manifest {
        var manifest = Manifest(components: [.base])
        manifest.passwordClients = ["work", "core-vpn"]
        return manifest
    }

    struct Run {
        var status: Int32
        var stdout: String
        /// Everything the stand-ins recorded, in order: `zenity …`, `lq …`, `stdin …`, `notify …`.
        var log: [String]
    }

    /// `dialogs` maps a stand-in dialog program to its body; `saves` is whether `lq addkey` succeeds.
    func run(caller: String = "core-vpn", token: String, dialogs: [String: String], saves: Bool = true, waitFor lastLine: String? = nil) throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-prompt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        let log = folder + "/log"
        var standIns = [
            "stat": "id -un",
            "notify-send": "printf 'notify %s\\n' \"$*\" >> \(log)",
            "lq": "printf 'lq %s\\n' \"$*\" >> \(log)\nprintf 'stdin %s\\n' \"$(cat)\" >> \(log)\nexit \(saves ? 0 : 1)",
        ]
        for (name, body) in dialogs { standIns[name] = "printf '\(name) %s\\n' \"$*\" >> \(log)\n" + body }
        try writeStandIns(standIns, in: folder + "/bin")
        let script = try #require(try Dom0Service.all(Self.manifest).first { $0.name == "liteqube.SplitPassword" }).content
        let path = folder + "/liteqube.SplitPassword"
        try script.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o755)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [token]
        process.environment = ["PATH": folder + "/bin:/usr/bin:/bin", "QREXEC_REMOTE_DOMAIN": caller, "QREXEC_SERVICE_ARGUMENT": token]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let stdout = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // The offer to save runs detached, after the caller has its answer.
        var lines: [String] = []
        for _ in 0..<100 {
            lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            if lastLine.map({ last in lines.contains { $0.hasPrefix(last) } }) ?? true { break }
            usleep(50_000)
        }
        return Run(status: process.terminationStatus, stdout: stdout, log: lines)
    }

    static let zenity = "case \" $* \" in *' --entry '*) printf 'hunter 2\\n' ;; *' --question '*) exit 0 ;; esac"

    @Test func theUserIsAskedTheCallerGetsTheAnswerAndSavingIsOffered() throws {
        let run = try run(token: "vpn", dialogs: ["zenity": Self.zenity], waitFor: "notify")
        #expect(run.status == 0)
        #expect(run.stdout == "hunter 2")
        #expect(run.log == [
            "zenity --entry --hide-text --title=Password request --timeout=60 --text=core-vpn asks for the password vpn, which core-keys does not hold",
            "zenity --question --title=Password request --timeout=60 --text=Save the password vpn of core-vpn in core-keys?",
            "lq addkey password --keys-qube core-keys --template debian-core -- core-vpn vpn",
            "stdin hunter 2",
            "notify --urgency=normal --expire-time=5000 --icon=dialog-information -- core-vpn Password vpn saved in core-keys",
        ])
    }

    @Test func declinedSavingSavesNothingAndAFailedSaveIsShown() throws {
        let declined = try run(token: "vpn", dialogs: ["zenity": "case \" $* \" in *' --entry '*) echo pw ;; *) exit 1 ;; esac"], waitFor: "zenity --question")
        #expect(declined.stdout == "pw" && declined.status == 0)
        usleep(300_000)
        #expect(!declined.log.contains { $0.hasPrefix("lq ") })
        let failed = try run(token: "vpn", dialogs: ["zenity": Self.zenity], saves: false, waitFor: "notify")
        #expect(failed.log.last == "notify --urgency=critical --expire-time=5000 --icon=dialog-error -- core-vpn Password vpn NOT saved in core-keys")
    }

    @Test func kdialogServesWhenThereIsNoZenity() throws {
        let kdialog = "case \"$3\" in --password) echo 'from kde' ;; --yesno) exit 1 ;; esac"
        let run = try run(token: "mail.pop3", dialogs: ["kdialog": kdialog], waitFor: "kdialog --title Password request --yesno")
        #expect(run.stdout == "from kde")
        #expect(run.log.first == "kdialog --title Password request --password core-vpn asks for the password mail.pop3, which core-keys does not hold")
    }

    @Test func cancelledOrEmptyAnswersAndNoDialogProgramFailTheCall() throws {
        let cancelled = try run(token: "vpn", dialogs: ["zenity": "exit 1"])
        #expect(cancelled.status == 1 && cancelled.stdout.isEmpty)
        let empty = try run(token: "vpn", dialogs: ["zenity": "echo"])
        #expect(empty.status == 1 && empty.stdout.isEmpty)
        let none = try run(token: "vpn", dialogs: [:])
        #expect(none.status == 1 && none.stdout.isEmpty)
        #expect(none.log.last?.hasPrefix("notify --urgency=critical") == true && none.log.last?.contains("neither zenity nor kdialog") == true)
    }

    @Test func aTokenOrCallerOutsideQrexecsCharactersIsRefusedUnasked() throws {
        for (caller, token) in [("core-vpn", "a<b>"), ("core-vpn", ""), ("x$(reboot)", "vpn")] {
            let run = try run(caller: caller, token: token, dialogs: ["zenity": Self.zenity])
            #expect(run.status == 1 && run.stdout.isEmpty && run.log.isEmpty, "\(caller) \(token)")
        }
    }

    @Test func onlyTheNamedClientsMayCallItAndTheKeysQube() throws {
        let rules = PolicyRules.rules(Self.manifest).filter { $0.service == "liteqube.SplitPassword" }.map(\.line)
        #expect(rules == [
            "liteqube.SplitPassword\t*\twork\tcore-keys\tallow", "liteqube.SplitPassword\t*\twork\t@adminvm\tallow",
            "liteqube.SplitPassword\t*\tcore-vpn\tcore-keys\tallow", "liteqube.SplitPassword\t*\tcore-vpn\t@adminvm\tallow",
        ])
        #expect(try Dom0Service.all(Manifest(components: [.base])).allSatisfy { $0.name != "liteqube.SplitPassword" })
    }
}
