import ArgumentParser
import Glibc
import InQubeTool
import Shards

extension ShardCommand {
    struct InstallUnits: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install-units",
            abstract: "Install and enable the dom0 unit that attaches present shards before qubesd and splits them after it.",
            discussion: """
                Writes \(ShardBootUnits.unitPath), the volume list \(ShardBootUnits.volumeListPath) and the link \
                \(ShardBootUnits.wantsLink), each atomically. A volume is a shard folder or a shell pattern for \
                several (/run/shufflecake/sflc_*); one that is not there at boot is skipped. Run systemctl \
                daemon-reload afterwards.
                """)

        @Option(name: .customLong("volume"), help: "A shard folder or shell pattern; repeat it.") var volumes: [String]
        @Option(help: "Install into this folder instead of /.") var root = "/"
        @Option(help: "The lq program the unit runs.") var lq = "/usr/bin/lq"

        func run() throws {
            try ShardIO.run {
                for path in try ShardBootUnits(root: root, lq: lq).install(volumes: volumes) { Terminal.write("written: \(path)\n") }
            }
        }
    }

    struct UninstallUnits: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "uninstall-units",
            abstract: "Remove what install-units wrote: the unit, its link and the volume list.",
            discussion: "Refuses, before removing anything, a file there that install-units did not write.")

        @Option(help: "Uninstall from this folder instead of /.") var root = "/"

        func run() throws {
            try ShardIO.run {
                for path in try ShardBootUnits(root: root).uninstall() { Terminal.write("removed: \(path)\n") }
            }
        }
    }
}

extension ShardCommand {
    struct CreateSnapshotCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-snapshot",
            abstract: "qubesd's create-snapshot helper of the file driver, attaching read-only images read-only.",
            discussion: """
                The arguments of Qubes' own helper: NAME IMAGE COW sets up the snapshot of IMAGE and the origin NAME; \
                NAME IMAGE COW COW2 the snapshot and NAME as a snapshot of it with COW2. An IMAGE with no write \
                permission, or on a read-only file system, is attached with losetup --readonly. Called through a \
                link named create-snapshot (install-create-snapshot), lq acts as this command.
                """)

        @Argument(help: "NAME IMAGE COW [COW2].") var arguments: [String]

        func run() throws {
            try ShardIO.run {
                // As Qubes' helper: the programs from PATH (sudo's secure_path when qubesd calls it).
                let path = getenv("PATH").map { String(cString: $0).split(separator: ":").map(String.init) } ?? []
                try CreateSnapshot(searchPath: path.isEmpty ? ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] : path).run(arguments)
            }
        }
    }

    struct InstallCreateSnapshot: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install-create-snapshot",
            abstract: "Put lq's create-snapshot in place of /usr/lib/qubes/create-snapshot, or back with --uninstall.",
            discussion: """
                Qubes' helper is kept as /usr/lib/qubes/create-snapshot.qubes and the helper becomes a link to lq. \
                An update of qubes-core-dom0 writes Qubes' helper again: run this again after one.
                """)

        @Flag(help: "Put Qubes' own helper back.") var uninstall = false
        @Option(help: "Install into this folder instead of /.") var root = "/"
        @Option(help: "The lq program the link leads to.") var lq = "/usr/bin/lq"

        func run() throws {
            try ShardIO.run {
                let install = CreateSnapshotInstall(root: root, lq: lq)
                for path in try uninstall ? install.uninstall() : install.install() { Terminal.write("written: \(path)\n") }
            }
        }
    }
}
