import LQCommon
import SystemLayer

/// USB storage in core-usb (docs/split-services.md, "Storage signals"): dom0 hears when a disk or
/// partition with a file system Liteqube can use arrives (`liteqube.SignalStorage+A_<device>_<type>_<size>`)
/// and when it goes (`R_<device>`); a whole disk with nothing usable on it is reported as an error, other
/// partitions are left alone. blkid's `-o udev` output is read as `KEY=VALUE` data, never evaluated, and
/// the device name must be a USB or Xen block device name.
public struct StorageSignal: Sendable {
    /// What udev saw happen to the device.
    public enum Event: String, Sendable, CaseIterable {
        case add, remove
    }

    /// What `liteqube.StorageConfig+<device>` answers dom0: `<type> <size>` (docs/split-services.md,
    /// "Storage signals"), the type as dom0 is shown it (`LUKS`, `vfat`, …), else blkid's file system or
    /// partition table type (`dos`, `gpt`), else `none`; a type outside `A-Za-z0-9_.-` is `unknown`.
    public func describe(device: String) throws(SplitError) -> String {
        let device = try Self.validateDevice(device)
        let properties = try probe(device)
        let found = properties["ID_FS_TYPE"].flatMap { $0.isEmpty ? nil : $0 } ?? properties["ID_PART_TABLE_TYPE"] ?? ""
        let type = Self.fileSystems[found] ?? found
        let plain = !type.isEmpty && type.utf8.count <= 32
            && type.utf8.allSatisfy { isASCIIDigit($0) || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "z")) || "_.-".utf8.contains($0) }
        return "\(found.isEmpty ? "none" : plain ? type : "unknown") \(Self.sizeText(try size(device)))"
    }

    /// What dom0 is told.
    public enum Outcome: Sendable, Hashable {
        /// `liteqube.SignalStorage+<argument>`.
        case signal(String)
        /// `liteqube.Error+<message>`.
        case error(String)
        /// Nothing (a partition without a usable file system, a whole disk with a partition table).
        case silent
    }

    /// File systems dom0 is told about, by blkid's `ID_FS_TYPE`, and the name it is shown as.
    public static let fileSystems = ["vfat": "vfat", "ext4": "ext4", "ntfs": "ntfs", "exfat": "exfat", "crypto_LUKS": "LUKS"]

    /// sysfs's block devices (`<device>/size`, `<device>/partition`).
    public var blockFolder: String
    /// The blkid program.
    public var blkid: String
    public var system: any SystemCalls
    /// Where `liteqube.SignalStorage` and `liteqube.Error` reports go.
    public var signals: any Notifier
    public var errors: any Notifier

    public init(
        blockFolder: String = "/sys/class/block", blkid: String = "/sbin/blkid", system: any SystemCalls = HostSystem(),
        signals: any Notifier = QrexecNotifier(service: "liteqube.SignalStorage"),
        errors: any Notifier = QrexecNotifier(service: "liteqube.Error")
    ) {
        self.blockFolder = blockFolder
        self.blkid = blkid
        self.system = system
        self.signals = signals
        self.errors = errors
    }

    /// Looks at the device (on `add`), tells dom0, and returns what it said.
    public func handle(_ event: Event, device: String) throws(SplitError) -> Outcome {
        let device = try Self.validateDevice(device)
        let outcome: Outcome
        switch event {
        case .remove:
            outcome = .signal("R_\(device)")
        case .add:
            let properties = try probe(device)
            let isPartition = (try? system.readPrefix("\(blockFolder)/\(device)/partition", count: 16)).map { !$0.isEmpty } ?? false
            outcome = Self.outcome(device: device, properties: properties, size: try size(device), isPartition: isPartition)
        }
        switch outcome {
        case .signal(let argument): signals.notify(qube: device, message: argument)
        case .error(let message): errors.notify(qube: device, message: message)
        case .silent: break
        }
        return outcome
    }

    /// `sd` or `xvd`, one or two lower-case letters, then at most three digits (a partition number).
    public static func validateDevice(_ name: String) throws(SplitError) -> String {
        let bytes = Array(name.utf8)
        let prefix = bytes.starts(with: Array("xvd".utf8)) ? 3 : bytes.starts(with: Array("sd".utf8)) ? 2 : 0
        let letters = bytes.dropFirst(prefix).prefix { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
        let digits = bytes.dropFirst(prefix + letters.count)
        guard prefix > 0, (1...2).contains(letters.count), digits.count <= 3, digits.allSatisfy(isASCIIDigit) else {
            throw SplitError(.argument, "refused: '\(shown(bytes))' is not a USB or Xen block device name (sdX, sdXN, xvdX, xvdXN)")
        }
        return name
    }

    /// blkid's `-o udev` lines, `KEY=VALUE`: keys of `A-Z 0-9 _`, at most 256 lines of at most 4 KiB.
    public static func properties(_ output: [UInt8]) throws(SplitError) -> [String: String] {
        var properties: [String: String] = [:]
        let lines = output.split(separator: 0x0A)
        guard lines.count <= 256 else { throw SplitError(.format, "blkid: \(lines.count) lines, more than 256") }
        for (number, line) in lines.enumerated() {
            guard line.count <= 4096, let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
                throw SplitError(.format, "blkid line \(number + 1): not KEY=VALUE")
            }
            let key = line[line.startIndex..<equals]
            guard !key.isEmpty, key.allSatisfy({ ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || isASCIIDigit($0) || $0 == UInt8(ascii: "_") })
            else { throw SplitError(.format, "blkid line \(number + 1): key '\(shown(Array(key)))' is not A-Z 0-9 _") }
            properties[String(decoding: key, as: UTF8.self)] = String(decoding: line[(equals + 1)...], as: UTF8.self)
        }
        return properties
    }

    /// What dom0 is told about a device that arrived.
    public static func outcome(device: String, properties: [String: String], size: Int64, isPartition: Bool) -> Outcome {
        let type = properties["ID_FS_TYPE"] ?? ""
        if let shown = fileSystems[type] { return .signal("A_\(device)_\(shown)_\(sizeText(size))") }
        if isPartition || properties["ID_PART_TABLE_TYPE"] != nil { return .silent }
        return .error("USB storage \(device): \(type.isEmpty ? "no file system found" : "unsupported file system \(type)")")
    }

    /// Bytes as a whole number of b, k, M or G (powers of 1024, rounded down).
    public static func sizeText(_ bytes: Int64) -> String {
        var value = bytes
        for unit in ["b", "k", "M"] {
            if value < 1024 { return "\(value)\(unit)" }
            value /= 1024
        }
        return "\(value)G"
    }

    /// blkid's properties of the device (none when it finds nothing).
    private func probe(_ device: String) throws(SplitError) -> [String: String] {
        let probe = try system.runProgram(blkid, ["-o", "udev", "-p", "/dev/" + device], outputLimit: 64 << 10)
        // blkid exits 2 when it finds nothing: no properties.
        guard probe.status == 0 || probe.status == 2 else { throw SplitError(.system, "\(blkid) /dev/\(device): exit \(probe.status)") }
        return try Self.properties(probe.output)
    }

    /// The device's size in bytes, from its 512-byte sector count in sysfs.
    private func size(_ device: String) throws(SplitError) -> Int64 {
        let path = "\(blockFolder)/\(device)/size"
        let text: [UInt8]
        do {
            text = try system.readPrefix(path, count: 32)
        } catch {
            throw SecureFile.refusal(error, path)
        }
        let digits = text.prefix { $0 != 0x0A }
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy(isASCIIDigit), let sectors = Int64(String(decoding: digits, as: UTF8.self)),
            sectors <= Int64.max / 512
        else { throw SplitError(.format, "\(path): not a sector count") }
        return sectors * 512
    }
}
