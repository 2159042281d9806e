import Foundation
import Glibc
import LQCommon
import SplitServices
import SystemLayer
import Testing

@Suite(.timeLimit(.minutes(1))) struct StorageSignalTests {
    let folder: Folder
    let signals = Recorder()
    let errors = Recorder()

    init() throws {
        folder = try Folder()
    }

    /// A device in a stand-in sysfs, and a blkid that prints `probe` for it.
    func device(_ name: String, sectors: Int, partition: Bool, probe: String, status: Int32 = 0) throws -> StorageSignal {
        try folder.file("sys/\(name)/size", "\(sectors)\n", mode: 0o644)
        if partition { try folder.file("sys/\(name)/partition", "1\n", mode: 0o644) }
        try folder.file("probe", probe, mode: 0o644)
        try folder.file("blkid", "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"-o udev -p /dev/\(name)\" ] || exit 9\ncat \(folder.path)/probe\nexit \(status)\n", mode: 0o755)
        return StorageSignal(blockFolder: folder.path + "/sys", blkid: folder.path + "/blkid", signals: signals, errors: errors)
    }

    @Test func aStickWithAUsableFileSystemIsAnnouncedWithItsSize() throws {
        let signal = try device("sdb1", sectors: 31_266_816, partition: true, probe: "ID_FS_LABEL=My\\x20Stick\nID_FS_TYPE=vfat\nID_FS_USAGE=filesystem\n")
        #expect(try signal.handle(.add, device: "sdb1") == .signal("A_sdb1_vfat_14G"))
        #expect(try signal.handle(.remove, device: "sdb1") == .signal("R_sdb1"))
        #expect(signals.messages == ["A_sdb1_vfat_14G", "R_sdb1"])
        #expect(errors.messages.isEmpty)
    }

    @Test func dom0AskingForADeviceGetsItsTypeAndSizeAndNothingIsSignalled() throws {
        #expect(try device("sdb1", sectors: 31_266_816, partition: true, probe: "ID_FS_TYPE=crypto_LUKS\n").describe(device: "sdb1") == "LUKS 14G")
        #expect(try device("sdc", sectors: 2_000_000, partition: false, probe: "ID_PART_TABLE_TYPE=dos\n").describe(device: "sdc") == "dos 976M")
        #expect(try device("sdd2", sectors: 100, partition: true, probe: "ID_FS_TYPE=btrfs\n").describe(device: "sdd2") == "btrfs 50k")
        #expect(try device("sde", sectors: 1, partition: false, probe: "", status: 2).describe(device: "sde") == "none 512b")
        #expect(try device("sdf", sectors: 1, partition: false, probe: "ID_FS_TYPE=x y;reboot\n").describe(device: "sdf") == "unknown 512b")
        #expect(throws: SplitError.self) { try device("sdg", sectors: 1, partition: false, probe: "").describe(device: "../sda") }
        #expect(signals.messages.isEmpty && errors.messages.isEmpty)
    }

    @Test func encryptedDisksShowAsLUKS() throws {
        let signal = try device("xvdi", sectors: 2048, partition: false, probe: "ID_FS_TYPE=crypto_LUKS\nID_FS_VERSION=2\n")
        #expect(try signal.handle(.add, device: "xvdi") == .signal("A_xvdi_LUKS_1M"))
    }

    @Test func aWholeDiskWithNothingUsableIsAnErrorAPartitionIsLeftAlone() throws {
        let disk = try device("sdc", sectors: 100, partition: false, probe: "ID_FS_TYPE=btrfs\n")
        #expect(try disk.handle(.add, device: "sdc") == .error("USB storage sdc: unsupported file system btrfs"))
        let empty = try device("sdd", sectors: 100, partition: false, probe: "", status: 2)
        #expect(try empty.handle(.add, device: "sdd") == .error("USB storage sdd: no file system found"))
        let partitioned = try device("sde", sectors: 100, partition: false, probe: "ID_PART_TABLE_TYPE=gpt\n")
        #expect(try partitioned.handle(.add, device: "sde") == .silent)
        let swap = try device("sde2", sectors: 100, partition: true, probe: "ID_FS_TYPE=swap\n")
        #expect(try swap.handle(.add, device: "sde2") == .silent)
        #expect(errors.messages == ["USB storage sdc: unsupported file system btrfs", "USB storage sdd: no file system found"])
        #expect(signals.messages.isEmpty)
    }

    @Test(arguments: ["../sda", "sda/../../etc", "sd", "sdabc", "sda1234", "nvme0n1", "xvda;reboot", "SDA", "", "sda 1"])
    func devicesOutsideTheGrammarAreRefusedBeforeAnythingRuns(_ name: String) throws {
        let signal = StorageSignal(blockFolder: folder.path + "/sys", blkid: "/nonexistent", signals: signals, errors: errors)
        #expect(throws: SplitError.self) { try signal.handle(.add, device: name) }
        #expect(throws: SplitError.self) { try signal.handle(.remove, device: name) }
        #expect(signals.messages.isEmpty && errors.messages.isEmpty)
    }

    @Test func blkidOutputIsDataNotCode() throws {
        #expect(try StorageSignal.properties(Array("ID_FS_TYPE=vfat\nID_FS_LABEL=$(reboot)\n".utf8)) == ["ID_FS_TYPE": "vfat", "ID_FS_LABEL": "$(reboot)"])
        #expect(throws: SplitError.self) { try StorageSignal.properties(Array("reboot\n".utf8)) }
        #expect(throws: SplitError.self) { try StorageSignal.properties(Array("id_fs_type=vfat\n".utf8)) }
        #expect(throws: SplitError.self) { try StorageSignal.properties(Array(String(repeating: "A=1\n", count: 300).utf8)) }
        let signal = try device("sdf", sectors: 100, partition: false, probe: "ID_FS_TYPE=vfat; reboot\n")
        #expect(try signal.handle(.add, device: "sdf") == .error("USB storage sdf: unsupported file system vfat; reboot"))
    }

    @Test func sizesUseTheLargestWholeUnit() {
        #expect(StorageSignal.sizeText(512) == "512b")
        #expect(StorageSignal.sizeText(1536) == "1k")
        #expect(StorageSignal.sizeText(5 << 20) == "5M")
        #expect(StorageSignal.sizeText(2 << 40) == "2048G")
    }
}
