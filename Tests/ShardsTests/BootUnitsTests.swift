import Foundation
import Testing
import TestSupport

@testable import Shards

/// A program found in the usual folders, or nil.
func installedProgram(_ name: String) -> String? {
    ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].map { $0 + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs `program` with `arguments`; its status and what it printed on stdout and stderr.
func runProgram(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let pipe = Pipe()
    (process.standardOutput, process.standardError) = (pipe, pipe)
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite struct BootUnitsTests {
    let volumes = ["/run/shufflecake/sflc_*", "/media/usb disk/lq-shard"]

    /// Every file and link below `root` (not the folders), relative, with its text or link target.
    func tree(_ root: URL) -> [String: String] {
        var found: [String: String] = [:]
        for case let url as URL in FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) ?? .init() {
            let relative = String(url.path.dropFirst(root.path.count))
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: url.path) {
                found[relative] = "-> " + target
            } else if let data = FileManager.default.contents(atPath: url.path) {
                found[relative] = String(decoding: data, as: UTF8.self)
            }
        }
        return found
    }

    @Test func theUnitRunsBeforeQubesdAfterTheVolumesMountsAndVerifies() throws {
        let root = try Scratch.folder("lq-units")
        defer { try? FileManager.default.removeItem(at: root) }
        let units = ShardBootUnits(root: root.path, lq: "/bin/true")
        let written = try units.install(volumes: volumes)
        #expect(written == [root.path + "/etc/systemd/system/lq-shards.service", root.path + "/etc/lq/shard-volumes",
                            root.path + "/etc/systemd/system/qubesd.service.wants/lq-shards.service"])
        let unit = try String(contentsOfFile: written[0], encoding: .utf8)
        let lines = unit.split(separator: "\n").map(String.init)
        #expect(lines.contains("Before=qubesd.service"))
        #expect(lines.contains(#"After=run.mount run-shufflecake.mount media.mount media-usb\x20disk.mount media-usb\x20disk-lq\x2dshard.mount"#))
        #expect(lines.contains("ExecStart=/bin/true shard attach --boot --volume-list /etc/lq/shard-volumes"))
        #expect(lines.contains("ExecStop=/bin/true shard detach --boot --all"))
        #expect(lines.contains("RemainAfterExit=yes") && lines.contains("Type=oneshot") && lines.contains("WantedBy=qubesd.service"))
        #expect(try ShardBootUnits.parseVolumeList(Array(Data(contentsOf: URL(fileURLWithPath: written[1]))), file: "l") == volumes)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: written[2]) == "/etc/systemd/system/lq-shards.service")
        if let escape = installedProgram("systemd-escape") {
            for path in ["/media/usb disk/lq-shard", "/run/shufflecake", "/.hidden/ä-b"] {
                let result = try runProgram(escape, ["--path", path])
                #expect(result.output == ShardBootUnits.escapedPath(path) + "\n", "\(path)")
            }
        }
        let verify = try #require(installedProgram("systemd-analyze"), "systemd-analyze is not installed (apt-get install systemd)")
        let result = try runProgram(verify, ["verify", written[0]])
        #expect(result.status == 0 && result.output.isEmpty, "\(result.output)")
    }

    @Test func uninstallRemovesExactlyWhatInstallWroteAndForeignFilesAreLeftAlone() throws {
        let root = try Scratch.folder("lq-units")
        defer { try? FileManager.default.removeItem(at: root) }
        let other = root.appendingPathComponent("etc/systemd/system/other.service")
        try FileManager.default.createDirectory(at: other.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("[Unit]\n".utf8).write(to: other)
        let before = tree(root)
        let units = ShardBootUnits(root: root.path)
        _ = try units.install(volumes: volumes)
        // Installing again rewrites the same files.
        _ = try units.install(volumes: [volumes[0]])
        #expect(Set(tree(root).keys).subtracting(before.keys).count == 3)
        #expect(try units.uninstall().count == 3)
        #expect(tree(root) == before)
        #expect(try units.uninstall() == [])
        // A unit of the same name not written by lq: neither replaced nor removed.
        try Data("[Unit]\nDescription=mine\n".utf8).write(to: root.appendingPathComponent("etc/systemd/system/lq-shards.service"))
        let foreign = tree(root)
        #expect(throws: ShardIssue.self) { try units.install(volumes: volumes) }
        #expect(throws: ShardIssue.self) { try units.uninstall() }
        #expect(tree(root) == foreign)
        #expect(throws: ShardIssue.self) { try units.install(volumes: ["relative/path"]) }
        #expect(throws: ShardIssue.self) { try ShardBootUnits(root: root.path, lq: "/usr/bin/lq x").unitText(volumes: volumes) }
    }
}

@Suite(.serialized) struct BootLifecycleTests {
    /// At boot (qubesd down) the present shards of the volume list are merged and qubesd is pointed at the
    /// merged store; at shutdown (qubesd stopped) they are split home: every file as before.
    @Test func bootAttachesWhatIsPresentAndShutdownSplitsItHome() throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        try dom0.qubesd.stop()
        let before = dom0.files()
        let list = dom0.path("shard-volumes")
        try Data("# volumes\n\(dom0.path("d/s*"))\n\(dom0.path("absent/*"))\n\(dom0.path("gone"))\n".utf8).write(to: URL(fileURLWithPath: list))
        let attached = try ShardLifecycle.attach([], main: dom0.main, options: dom0.options, volumeList: list, settings: dom0.settings(boot: true))
        #expect(attached.merge?.shards.map(\.name) == ["s0", "s1"])
        #expect(attached.steps.first?.hasPrefix("merge ") == true && attached.steps.last?.hasPrefix("have qubesd read ") == true)
        #expect(dom0.qubesd.serving == nil && dom0.qubesd.prepared == dom0.path("run/lq/qubes.xml"))
        // qubesd starts on the merged store; while it answers, the boot mode refuses.
        try dom0.qubesd.start(store: dom0.qubesd.prepared)
        #expect(try dom0.listed().isSuperset(of: ["anon-whonix", "vault"]))
        let refused = #expect(throws: LifecycleError.self) { try ShardLifecycle.detach(nil, settings: dom0.settings(boot: true)) }
        #expect(refused?.changed == false)
        try dom0.qubesd.stop()
        let detached = try ShardLifecycle.detach(nil, settings: dom0.settings(boot: true))
        #expect(detached.audit?.findings == [])
        #expect(dom0.qubesd.prepared == nil && dom0.files() == before)
        // Nothing attached at shutdown, nothing present at boot: nothing to do.
        #expect(try ShardLifecycle.detach(nil, settings: dom0.settings(boot: true)).steps == [])
        try Data("\(dom0.path("absent/*"))\n".utf8).write(to: URL(fileURLWithPath: list))
        #expect(try ShardLifecycle.attach([], volumeList: list, settings: dom0.settings(boot: true)).steps == [])
        #expect(dom0.files() == before)
    }

    @Test(arguments: [LifecycleStep.merge, .installPolicy, .writeRecord, .pointQubesd])
    func aFailureAtBootRestoresTheStateBefore(_ step: LifecycleStep) throws {
        let dom0 = try Dom0()
        defer { dom0.remove() }
        try dom0.qubesd.stop()
        let before = dom0.files()
        let error = #expect(throws: LifecycleError.self) {
            try ShardLifecycle.attach([dom0.s0], main: dom0.main, options: dom0.options, settings: dom0.settings(failing: step, boot: true))
        }
        #expect(error?.step == step && error?.restoreErrors == [])
        #expect(dom0.files() == before && dom0.qubesd.serving == nil && dom0.qubesd.prepared == nil)
    }
}
