// The naming rules Qubes and qrexec impose, shared by the guard, the split services and provisioning.

/// The qube-name rules qubesd applies to new qubes and request values (docs/qubes-xml.md, "Admin API checks").
public enum QubeName {
    /// qubesd's message for an invalid `name`, or `nil` when it is valid.
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard let first = bytes.first else { return "VM name cannot be empty" }
        guard bytes.count <= 31 else { return "VM name must be shorter than 32 characters" }
        guard isASCIILetter(first) else { return "VM name cannot start with hyphen, underscore, dot or numbers" }
        let allowed = { (byte: UInt8) in isASCIILetter(byte) || isASCIIDigit(byte) || byte == 0x5F || byte == 0x2E || byte == 0x2D }
        guard bytes.allSatisfy(allowed) else { return "VM name contains illegal characters" }
        guard !["Domain-0", "none", "default"].contains(name) else { return "VM name cannot be '\(name)'" }
        guard !name.hasSuffix("-dm") else { return "VM name cannot end with -dm" }
        return nil
    }
}

/// Whether `name` is a Qubes qube name (`QubeName.problem` finds none): always one safe path component.
public func isValidQubeName(_ name: String) -> Bool { QubeName.problem(name) == nil }

/// `a`–`z`, `A`–`Z`.
public func isASCIILetter(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
}

/// `0`–`9`.
public func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

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

/// The tools the template's one static program (`lq-inqube`) runs as, by the name of the link it is
/// called through: provisioning makes the links, the program dispatches on them.
public enum InQubeToolName: String, Sendable, CaseIterable {
    case protect = "lq-protect"
    case splitFile = "lq-splitfile"
    case splitPassword = "lq-splitpassword"
    case splitSSH = "lq-splitssh"
    case storage = "lq-storage"
    case torSetAP = "lq-torsetap"
}
