/// Sends one dom0 notification as `qrexec-client-vm dom0 <service>+<message>` (`liteqube.Error` or
/// `liteqube.Message`), if the client is installed; a failure to notify is not an error of the run.
public struct QrexecNotifier: Notifier {
    public var service: String
    public var client: String
    public let system: any SystemCalls

    public init(service: String, client: String = "/usr/bin/qrexec-client-vm", system: any SystemCalls = HostSystem()) {
        self.service = service
        self.client = client
        self.system = system
    }

    public func notify(qube: String, message: String) {
        _ = try? system.run(client, ["dom0", service + "+" + qrexecArgument(message)], input: [], outputLimit: 0)
    }
}

/// A qrexec service argument made from text: characters outside `[A-Za-z0-9_.+-]` become `_`
/// (as qrexec itself does, and dom0's Message service turns `_` back into spaces), at most 64 bytes.
public func qrexecArgument(_ text: String) -> String {
    String(decoding: text.utf8.prefix(64).map { isQrexecArgumentByte($0) ? $0 : UInt8(ascii: "_") }, as: UTF8.self)
}

/// Whether `bytes` can name one file or token taken from a qrexec argument: 1 to 64 bytes of
/// `[A-Za-z0-9_.+-]`, not starting with `.` or `-` (so never `.`, `..`, a hidden file or an option).
public func isValidArgumentName(_ bytes: [UInt8]) -> Bool {
    guard let first = bytes.first, bytes.count <= 64, first != UInt8(ascii: "."), first != UInt8(ascii: "-") else { return false }
    return bytes.allSatisfy(isQrexecArgumentByte)
}

/// Whether a byte is in qrexec's argument character set `[A-Za-z0-9_.+-]`.
public func isQrexecArgumentByte(_ byte: UInt8) -> Bool {
    isASCIILetter(byte) || isASCIIDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
        || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
}
