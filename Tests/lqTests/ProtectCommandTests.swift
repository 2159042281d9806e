import Foundation
import Testing

@Suite struct ProtectCommandTests {
    /// A temp folder with `rules/` and `rw/`: one template file, one rogue file.
    static func volume() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-protect-cli-\(UUID().uuidString)")
        for path in ["rules/whitelist.ALL/notes", "rw/notes"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(path), withIntermediateDirectories: true)
        }
        try Data("x".utf8).write(to: folder.appendingPathComponent("rw/rogue file"))
        try Data("QUARANTINE=Yes\n".utf8).write(to: folder.appendingPathComponent("rules/settings.core-net"))
        return folder
    }

    @Test func dryRunPrintsJSONAndChangesNothing() throws {
        let folder = try Self.volume()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try LQ.run(
            "protect", "--rw", folder.appendingPathComponent("rw").path, "--rules", folder.appendingPathComponent("rules").path,
            "--qube", "core-net", "--dry-run", "--json")
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        #expect(result.stdout == """
            {
             "deleted": [],
             "deployed": [],
             "dry_run": true,
             "errors": [],
             "fixed": [],
             "formatted": null,
             "outcome": "checked",
             "power_off": null,
             "quarantined": [
              {
               "detail": "a file no rule allows; would move to QUARANTINE/rogue file",
               "path": "rogue file",
               "rule": "no rule"
              }
             ],
             "qube": "core-net"
            }

            """)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("rw/rogue file").path))
    }

    @Test func runQuarantinesAndPrintsOneLinePerAction() throws {
        let folder = try Self.volume()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try LQ.run(
            "protect", "--rw", folder.appendingPathComponent("rw").path, "--rules", folder.appendingPathComponent("rules").path,
            "--qube", "core-net")
        #expect(result.status == 0)
        #expect(result.stdout == """
            quarantined rogue file (no rule): a file no rule allows; moved to QUARANTINE/rogue file
            core-net: Files quarantined during boot: 1 quarantined

            """)
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("rw/QUARANTINE/rogue file").path))
    }

    @Test func dryRunTextSaysWhatWouldBeDone() throws {
        let folder = try Self.volume()
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("rules/template.ALL/config"), withIntermediateDirectories: true)
        try Data("exit 0\n".utf8).write(to: folder.appendingPathComponent("rules/template.ALL/config/rc.local"))
        let result = try LQ.run(
            "protect", "--rw", folder.appendingPathComponent("rw").path, "--rules", folder.appendingPathComponent("rules").path,
            "--qube", "core-net", "--dry-run")
        #expect(result.status == 0)
        #expect(result.stdout == """
            would quarantine rogue file (no rule): a file no rule allows; would move to QUARANTINE/rogue file
            would deploy config (template.ALL): would deploy: missing
            core-net: Files quarantined during boot: 1 quarantined, 1 deployed

            """)
    }

    @Test func missingRulesFolderExitsOneNamingIt() throws {
        let folder = try Self.volume()
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try LQ.run("protect", "--rw", folder.appendingPathComponent("rw").path, "--rules", "/nonexistent/protect", "--qube", "core-net")
        #expect(result.status == 1)
        #expect(result.stderr == "lq protect: core-net: /nonexistent/protect: cannot open the rules folder: openat: No such file or directory (errno 2)\n")
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try LQ.run("protect", "--rw", "/tmp", "--device", "/dev/xvdb").status == 2)
        #expect(try LQ.run("protect", "--qube", "../etc").status == 2)
        #expect(try LQ.run("protect", "--no-such-flag").status == 2)
        let help = try LQ.run("protect", "--help")
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: lq protect [--rw <dir>] [--device <path>] [--mount-point <dir>] [--rules <dir>] [--qube <name>] [--first-boot] [--keep-blank] [--dry-run] [--json]"))
    }
}

extension ProtectCommandTests {
    /// The template's own guard is the same command without the rest of lq.
    @Test func lqProtectIsLqProtectStandalone() throws {
        let folder = try Self.volume()
        defer { try? FileManager.default.removeItem(at: folder) }
        let arguments = [
            "--rw", folder.appendingPathComponent("rw").path, "--rules", folder.appendingPathComponent("rules").path,
            "--qube", "core-net", "--dry-run", "--json",
        ]
        let standalone = try InQubeTools.run("lq-protect", arguments)
        #expect(standalone.status == 0)
        #expect(standalone.stdout == (try LQ.run(arguments: ["protect"] + arguments)).stdout)
        #expect(try InQubeTools.run("lq-protect", ["--rw", "a", "--device", "b"]).status == 2)

        // The template's one program, through links named after the tools.
        let inQube = Bundle.main.bundleURL.appendingPathComponent("lq-inqube").path
        for tool in ["lq-protect", "lq-splitfile", "lq-splitpassword", "lq-splitssh", "lq-storage", "lq-torsetap"] {
            try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent(tool).path, withDestinationPath: inQube)
            let help = try InQubeTools.run(folder.appendingPathComponent(tool).path, ["--help"])
            #expect(help.status == 0 && help.stdout.contains("USAGE: \(tool)"), "\(tool): \(help.stdout)")
        }
        let linked = try InQubeTools.run(folder.appendingPathComponent("lq-protect").path, arguments)
        #expect(linked.status == 0)
        #expect(linked.stdout == standalone.stdout)
        let bare = try InQubeTools.run(inQube, [])
        #expect(bare.status == 2 && bare.stderr.contains("call it through a link named lq-protect, lq-splitfile, lq-splitpassword, lq-splitssh, lq-storage, lq-torsetap"))

        // The Tor qube's per-network state refuses a name that could leave its folder, before touching Tor.
        let torSetAP = folder.appendingPathComponent("lq-torsetap").path
        let state = folder.appendingPathComponent("tor").path
        let refused = try InQubeTools.run(torSetAP, ["set", "--state-folder", state, "--unit", "none.service", "--", "../../etc"])
        #expect(refused.status == 1 && refused.stderr.contains("lq-torsetap: refused: network name '../../etc' has the byte /"), "\(refused.stderr)")
        #expect(try InQubeTools.run(torSetAP, ["set"]).status == 2)
    }
}
