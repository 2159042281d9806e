import ArgumentParser
import LQCommon
import SplitServices

/// `lq-storage`: USB storage notifications from core-usb (udev starts it through `liteqube-storage@.service`).
public struct StorageTool: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "lq-storage",
        abstract: "Tell dom0 that USB storage arrived or went (liteqube.SignalStorage), or that it holds nothing usable (liteqube.Error).",
        discussion: """
            add: dom0 hears A_<device>_<type>_<size> for vfat, ext4, ntfs, exfat and LUKS; a whole disk with none of them \
            (and no partition table) is an error; other partitions are left alone. remove: R_<device>. \
            config: prints '<type> <size>' (liteqube.StorageConfig's answer to dom0) and signals nothing. \
            Exit status: 0 done, 1 refused, 2 usage.
            """)

    @Argument(help: "add, remove or config.") var request: Request
    @Argument(help: "The kernel's device name: sdX, sdXN, xvdX or xvdXN.") var device: String
    @Option(help: ArgumentHelp("sysfs block devices.", valueName: "dir")) var blockFolder = "/sys/class/block"
    @Option(help: ArgumentHelp("blkid.", valueName: "path")) var blkid = "/sbin/blkid"
    @Option(help: ArgumentHelp("The qrexec client.", valueName: "path")) var client = "/usr/bin/qrexec-client-vm"

    public init() {}

    public func run() throws {
        let signal = StorageSignal(
            blockFolder: blockFolder, blkid: blkid, signals: QrexecNotifier(service: "liteqube.SignalStorage", client: client),
            errors: QrexecNotifier(service: "liteqube.Error", client: client))
        try Tool.refusing { () throws(SplitError) in
            guard case .event(let event) = request else {
                print(try signal.describe(device: device))
                return
            }
            switch try signal.handle(event, device: device) {
            case .signal(let argument): Tool.error("liteqube.SignalStorage+\(argument)")
            case .error(let message): Tool.error("liteqube.Error: \(message)")
            case .silent: break
            }
        }
    }
}

extension StorageTool {
    /// What udev saw (`add`, `remove`), or dom0 asking what a device holds (`config`).
    enum Request: ExpressibleByArgument {
        case event(StorageSignal.Event)
        case config

        init?(argument: String) {
            if argument == "config" {
                self = .config
            } else if let event = StorageSignal.Event(rawValue: argument) {
                self = .event(event)
            } else {
                return nil
            }
        }

        static var allValueStrings: [String] { StorageSignal.Event.allCases.map(\.rawValue) + ["config"] }
    }
}
