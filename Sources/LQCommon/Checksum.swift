import Crypto

/// A checksum pin: the sha256 and sha512 of a file, as kept in `checksum.<qube>/…`
/// (docs/boot-guard.md, "Checksum pins").
///
/// The file holds exactly two lines of hex, sha256 then sha512, each ending in a newline
/// (the last newline may be missing). Hex is compared case-insensitively; pins are written
/// in lowercase. A file of any other shape is rejected.
public struct ChecksumPin: Sendable, Hashable {
    public var sha256: [UInt8]
    public var sha512: [UInt8]

    public init(sha256: [UInt8], sha512: [UInt8]) {
        self.sha256 = sha256
        self.sha512 = sha512
    }

    /// The pin of `content`.
    public init(of content: [UInt8]) {
        sha256 = Array(SHA256.hash(data: content))
        sha512 = Array(SHA512.hash(data: content))
    }

    /// Why a pin file was rejected. Never carries the file's bytes.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case lineCount(Int)
        case badSHA256
        case badSHA512

        public var description: String {
            switch self {
            case .lineCount(let count): "a checksum file must hold exactly 2 lines (sha256, sha512), not \(count)"
            case .badSHA256: "line 1 is not 64 hex digits (sha256)"
            case .badSHA512: "line 2 is not 128 hex digits (sha512)"
            }
        }
    }

    /// Parses a pin file.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count == 2 else { throw .lineCount(lines.count) }
        guard let sha256 = Self.hex(lines[0], digits: 64) else { throw .badSHA256 }
        guard let sha512 = Self.hex(lines[1], digits: 128) else { throw .badSHA512 }
        self.init(sha256: sha256, sha512: sha512)
    }

    /// The two-line file: lowercase hex, each line ending in a newline.
    public var fileBytes: [UInt8] {
        Array((Self.hexString(sha256) + "\n" + Self.hexString(sha512) + "\n").utf8)
    }

    /// Whether `content` has both hashes of this pin (compared in constant time).
    public func matches(_ content: [UInt8]) -> Bool {
        let actual = ChecksumPin(of: content)
        return Self.equal(actual.sha256, sha256) && Self.equal(actual.sha512, sha512)
    }

    private static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    private static func hex(_ line: ArraySlice<UInt8>, digits: Int) -> [UInt8]? {
        guard line.count == digits else { return nil }
        var result: [UInt8] = []
        result.reserveCapacity(digits / 2)
        var high: UInt8? = nil
        for byte in line {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let first = high {
                result.append(first << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        return result
    }

    /// Lowercase hex of `bytes`.
    public static func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Lowercase hex sha256 of `bytes`.
public func sha256Hex(_ bytes: [UInt8]) -> String { ChecksumPin.hexString(Array(SHA256.hash(data: bytes))) }

/// A sha256 fed in pieces (a volume image copied in chunks).
public struct StreamingSHA256: Sendable {
    private var hash = SHA256()

    public init() {}

    public mutating func update(_ bytes: [UInt8]) { hash.update(data: bytes) }

    /// The digest in lowercase hex.
    public func hex() -> String { ChecksumPin.hexString(Array(hash.finalize())) }
}
