import ArgumentParser
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
