import Foundation
import Testing
import TestSupport

@testable import Shards

/// Stand-in `losetup`, `blockdev` and `dmsetup` that record their arguments and the descriptors 3 and 4
/// they were given; losetup hands out /dev/loop0, 1, …, dmsetup "creates" its device in the mapper folder.
struct SnapshotTools {
    let root: URL
    var bin: String { root.path + "/bin" }
    var mapper: String { root.path + "/mapper" }
    var log: String { root.path + "/log" }

    init() throws {
        root = try Scratch.folder("lq-create-snapshot")
        for folder in ["bin", "mapper", "img"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        let record = #"""
            #!/bin/sh
            line="$(basename "$0") $*"
            for fd in 3 4; do [ -e /proc/$$/fd/$fd ] && line="$line fd$fd=$(readlink /proc/$$/fd/$fd)"; done
            echo "$line" >> LOG

            """#.replacingOccurrences(of: "LOG", with: root.path + "/log")
        let tools = [
            "losetup": #"n=$(cat COUNT 2>/dev/null || echo 0); echo $((n + 1)) > COUNT; echo /dev/loop$n"#
                .replacingOccurrences(of: "COUNT", with: root.path + "/count"),
            "blockdev": "echo 2048",
            "dmsetup": "touch \(mapper)/\"$2\"",
        ]
        for (name, body) in tools {
            let path = bin + "/" + name
            try Data((record + body + "\n").utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        for image in ["root.img", "root-cow.img", "private.img", "private-cow.img", "app-root-cow.img"] {
            FileManager.default.createFile(atPath: self.image(image), contents: Data(count: 4096))
        }
    }

    func image(_ name: String) -> String { root.path + "/img/" + name }

    /// `-<device in hex>:<inode>` of each path, from stat(1) as Qubes' helper names its snapshot.
    func identity(_ paths: String...) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        process.arguments = ["--printf=-%D:%i"] + paths
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Runs lq's helper with `arguments`; the calls recorded since the last run.
    func run(_ arguments: [String]) throws -> [String] {
        try? FileManager.default.removeItem(atPath: log)
        try CreateSnapshot(searchPath: [bin], mapperFolder: mapper).run(arguments)
        return (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
    }
}

@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: "/dev/loop1"), "no /dev/loop0 and 1 to stand for loop devices"))
struct CreateSnapshotTests {
    /// The calls Qubes' own create-snapshot makes with the same stand-ins (its dm-snapshot setup: the
    /// snapshot of the image with its cow, then the origin or a second snapshot), and the read-only case.
    @Test func aVolumeKeptOnStopGetsTheSnapshotAndTheOriginAsQubesHelperMakesThem() throws {
        let tools = try SnapshotTools()
        defer { try? FileManager.default.removeItem(at: tools.root) }
        let (image, cow) = (tools.image("private.img"), tools.image("private-cow.img"))
        let snapshot = "snapshot" + (try tools.identity(image, cow))
        #expect(try tools.run(["origin-x", image, cow]) == [
            "losetup --find --nooverlap --show -- \(image)",
            "losetup --find --nooverlap --show -- \(cow)",
            "blockdev --getsz /dev/loop0",
            "dmsetup create \(snapshot) --table 0 2048 snapshot /dev/fd/3 /dev/fd/4 P 256 fd3=/dev/loop0 fd4=/dev/loop1",
            "blockdev --getsz /dev/loop0",
            "dmsetup create origin-x --table 0 2048 snapshot-origin /dev/fd/3 fd3=/dev/loop0",
        ])
        // The snapshot is there already: the loop devices are asked for again (--nooverlap gives the same
        // ones), the snapshot is not created again (the origin is: the stand-in's is no block device).
        #expect(try !tools.run(["origin-x", image, cow]).contains { $0.contains(" create \(snapshot) ") })
        for name in [snapshot, "origin-x", "../count"] { try FileManager.default.removeItem(atPath: tools.mapper + "/" + name) }
        // A read-only image: its loop device and the origin read-only; the cow stays writable.
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: image)
        #expect(try CreateSnapshot(searchPath: []).isReadOnly(image) && !CreateSnapshot(searchPath: []).isReadOnly(cow))
        #expect(try tools.run(["origin-x", image, cow]) == [
            "losetup --find --nooverlap --readonly --show -- \(image)",
            "losetup --find --nooverlap --show -- \(cow)",
            "blockdev --getsz /dev/loop0",
            "dmsetup create \(snapshot) --table 0 2048 snapshot /dev/fd/3 /dev/fd/4 P 256 fd3=/dev/loop0 fd4=/dev/loop1",
            "blockdev --getsz /dev/loop0",
            "dmsetup create origin-x --readonly --table 0 2048 snapshot-origin /dev/fd/3 fd3=/dev/loop0",
        ])
    }

    @Test func aVolumeSnapshottedOnStartGetsTheSharedSnapshotThenItsOwn() throws {
        let tools = try SnapshotTools()
        defer { try? FileManager.default.removeItem(at: tools.root) }
        let (image, cow, own) = (tools.image("root.img"), tools.image("root-cow.img"), tools.image("app-root-cow.img"))
        let snapshot = "snapshot" + (try tools.identity(image, cow))
        for (readOnly, first) in [(false, 0), (true, 3)] {
            if readOnly { try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: image) }
            let loop = { (n: Int) in "/dev/loop\(first + n)" }
            #expect(try tools.run(["snapshot-app", image, cow, own]) == [
                "losetup --find --nooverlap\(readOnly ? " --readonly" : "") --show -- \(image)",
                "losetup --find --nooverlap --show -- \(cow)",
                "blockdev --getsz \(loop(0))",
                "dmsetup create \(snapshot) --table 0 2048 snapshot /dev/fd/3 /dev/fd/4 P 256 fd3=\(loop(0)) fd4=\(loop(1))",
                "losetup --find --nooverlap --show -- \(own)",
                "blockdev --getsz \(tools.mapper)/\(snapshot)",
                "dmsetup create snapshot-app --table 0 2048 snapshot /dev/fd/3 /dev/fd/4 P 256 fd3=\(tools.mapper)/\(snapshot) fd4=\(loop(2))",
            ])
            for name in [snapshot, "snapshot-app"] { try FileManager.default.removeItem(atPath: tools.mapper + "/" + name) }
        }
    }

    @Test func wrongArgumentsAndMissingImagesAreRefusedBeforeAnyDevice() throws {
        let tools = try SnapshotTools()
        defer { try? FileManager.default.removeItem(at: tools.root) }
        #expect(throws: ShardIssue.self) { try tools.run(["origin-x", tools.image("private.img")]) }
        let missing = #expect(throws: ShardIssue.self) { try tools.run(["origin-x", tools.image("none.img"), tools.image("private-cow.img")]) }
        #expect(missing?.file == tools.image("none.img"))
        #expect(!FileManager.default.fileExists(atPath: tools.log))
    }

    @Test func installKeepsQubesHelperAndUninstallPutsItBackByteForByte() throws {
        let root = try Scratch.folder("lq-helper")
        defer { try? FileManager.default.removeItem(at: root) }
        let helper = root.path + "/usr/lib/qubes/create-snapshot"
        try FileManager.default.createDirectory(atPath: root.path + "/usr/lib/qubes", withIntermediateDirectories: true)
        try Data("#!/bin/bash\n# Qubes' helper\n".utf8).write(to: URL(fileURLWithPath: helper))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: helper)
        let install = CreateSnapshotInstall(root: root.path, lq: "/usr/bin/lq")
        #expect(try install.uninstall() == [])
        #expect(try install.install() == [helper + ".qubes", helper])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: helper) == "/usr/bin/lq")
        #expect(try Data(contentsOf: URL(fileURLWithPath: helper + ".qubes")) == Data("#!/bin/bash\n# Qubes' helper\n".utf8))
        #expect(try install.install() == [])
        #expect(try install.uninstall() == [helper])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path + "/usr/lib/qubes") == ["create-snapshot"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: helper)) == Data("#!/bin/bash\n# Qubes' helper\n".utf8))
        #expect(try FileManager.default.attributesOfItem(atPath: helper)[.posixPermissions] as? Int == 0o755)
        // Something else in the helper's place, or a kept helper already there: left alone.
        try FileManager.default.createSymbolicLink(atPath: helper + ".qubes", withDestinationPath: "/elsewhere")
        #expect(throws: ShardIssue.self) { try install.install() }
        try FileManager.default.removeItem(atPath: helper + ".qubes")
        try FileManager.default.removeItem(atPath: helper)
        try FileManager.default.createSymbolicLink(atPath: helper, withDestinationPath: "/elsewhere")
        #expect(throws: ShardIssue.self) { try install.install() }
    }
}
