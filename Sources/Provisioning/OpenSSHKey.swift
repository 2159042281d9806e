import Foundation

/// What `lq addkey ssh` accepts as a key (docs/split-services.md, "Split SSH"): an OpenSSH private key
/// (`ssh-keygen`'s format since OpenSSH 7.8) stored without passphrase, since the keys qube loads it
/// with no one at a terminal; at most 16 KiB.
enum OpenSSHKey {
    static let maxSize = 16 * 1024

    /// Why `bytes` is not such a key, or `nil`.
    static func problem(_ bytes: [UInt8]) -> String? {
        guard bytes.count <= maxSize else { return "an ssh key of \(bytes.count) bytes, over \(maxSize)" }
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        guard lines.first == "-----BEGIN OPENSSH PRIVATE KEY-----", lines.last == "-----END OPENSSH PRIVATE KEY-----", lines.count > 2,
              let blob = Data(base64Encoded: lines.dropFirst().dropLast().joined())
        else { return "not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----; convert with ssh-keygen -p -f FILE)" }
        var rest = [UInt8](blob)[...]
        let magic = Array("openssh-key-v1\0".utf8)
        guard rest.starts(with: magic) else { return "not an openssh-key-v1 key" }
        rest = rest.dropFirst(magic.count)
        guard rest.count >= 4 else { return "a truncated OpenSSH key" }
        let length = rest.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        rest = rest.dropFirst(4)
        guard length <= rest.count else { return "a truncated OpenSSH key" }
        let cipher = String(decoding: rest.prefix(length), as: UTF8.self)
        return cipher == "none" ? nil : "the key has a passphrase (cipher \(cipher)): remove it with ssh-keygen -p -N '' -f FILE on a copy"
    }
}
