// The naming rules Qubes and qrexec impose, shared by the guard, the split services and provisioning.

/// Whether `name` is a Qubes qube name: a letter, then letters, digits, `_`, `.` or `-`, at most 31
/// characters, and not `.` or `..` (so it is always one safe path component).
public func isValidQubeName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard let first = bytes.first, bytes.count <= 31, isASCIILetter(first) else { return false }
    return bytes.allSatisfy { isASCIILetter($0) || isASCIIDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
}

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
