import LQCommon

/// NetworkManager's `secret_key` for a disposable core-net (docs/liteqube.md, "MAC addresses"): with
/// `cloned-mac-address=stable` NetworkManager derives each network's MAC from this key and the
/// connection, so the key must outlive the disposable. Apply generates it once, core-keys keeps it
/// under `/home/user/<network qube>/secret_key`, the template holds only its pin, and core-net's
/// rc.local fetches it over `liteqube.SplitFile` before NetworkManager starts.
public struct MACSecretKey: Sendable, Hashable {
    /// 512 lowercase hex digits (256 random bytes): NetworkManager takes any key of 16 bytes or more.
    public let content: String

    /// The key's length in bytes, as the original's `secret_key`.
    public static let size = 512
    /// The name core-keys serves it under, and its file name in `/var/lib/NetworkManager`.
    public static let servedName = "secret_key"

    /// A new key from the system's random source (`getrandom`).
    public static func generate() -> MACSecretKey {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<size / 2).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        return MACSecretKey(trusted: ChecksumPin.hexString(bytes))
    }

    private init(trusted content: String) { self.content = content }

    /// The key in `bytes`, or `nil` unless they are exactly 512 lowercase hex digits.
    public init?(_ bytes: [UInt8]) {
        guard bytes.count == Self.size, bytes.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        self.content = String(decoding: bytes, as: UTF8.self)
    }

    /// The pin the boot guard checks core-keys' copy against: sha256 and sha512 lines.
    var pin: String { String(decoding: ChecksumPin(of: Array(content.utf8)).fileBytes, as: UTF8.self) }

    /// Where core-keys keeps the key of `manifest`'s network qube.
    static func path(_ manifest: Manifest) -> String { "/home/user/\(manifest.name(.net))/\(servedName)" }

    /// Whether `manifest` asks for a key: a disposable NetworkManager core-net with stable MACs.
    static func wanted(_ manifest: Manifest) -> Bool {
        manifest.includes(.network) && manifest.stableMAC && manifest.disposableNetVM && !manifest.wiredOnly
    }

    /// The key core-keys holds, read through `executor`, when it is a valid one; else a new key
    /// (`nil` when `manifest` wants none). A keys qube the store does not hold yet is asked too, and
    /// its failure to answer means no key: a folder standing for it may hold one already.
    static func current(_ manifest: Manifest, keysExists: Bool, executor: Executor) throws -> MACSecretKey? {
        guard wanted(manifest) else { return nil }
        let keys = manifest.name(.keys)
        let path = path(manifest)
        func held() throws -> MACSecretKey? {
            guard try executor.inspect([path], in: keys)[path]?.kind == .file else { return nil }
            return MACSecretKey(try executor.read(path, in: keys))
        }
        return try (keysExists ? held() : (try? held()) ?? nil) ?? generate()
    }
}
