import Foundation
import LQCommon
import SystemLayer

/// A NetworkManager connection (keyfile) Liteqube gives the network qube
/// (docs/liteqube.md, "Saved networks"): a plain one lives in its template tree; one that holds a
/// secret lives in the keys qube, pinned by a checksum in the template, and
/// is fetched over `liteqube.SplitFile` at every boot.
public struct NetworkConnection: Sendable, Hashable {
    /// The keyfile's name in `/etc/NetworkManager/system-connections`.
    public var name: String
    public var content: String
    /// Whether it holds a password, PSK, PIN or key.
    public var hasSecret: Bool

    /// The name the keys qube serves it under: one path component of the
    /// qrexec argument character set.
    public var servedName: String {
        String(name.unicodeScalars.map { scalar -> Character in
            let allowed = scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || "_.-".unicodeScalars.contains(scalar))
            return allowed ? Character(scalar) : "_"
        })
    }

    /// Keyfile keys whose values are secrets (the `-flags` keys only say where a secret is kept).
    static let secretKeys: Set<String> = [
        "psk", "password", "password-raw", "pin", "leap-password", "private-key-password", "phase2-private-key-password",
        "wep-key0", "wep-key1", "wep-key2", "wep-key3", "secrets",
    ]

    public static let maxCount = 256
    public static let maxSize = 64 << 10

    /// The keyfiles of a dom0 folder (for example copied out of sys-net's
    /// `/etc/NetworkManager/system-connections`), read strictly.
    /// - Throws: `ProvisioningError` naming the file: not UTF-8, too large,
    ///   a name that is not one plain component, two names served alike.
    public static func read(folder: String) throws -> [NetworkConnection] {
        let files = SystemFileSystem()
        let names: [String]
        do throws(SystemError) {
            names = try files.entries(of: folder).map { String(decoding: $0, as: UTF8.self) }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        } catch {
            throw ProvisioningError(.ioFailure, "cannot list the network connections", path: folder, cause: error)
        }
        guard names.count <= maxCount else { throw ProvisioningError(.invalidNetwork, "more than \(maxCount) network connections", path: folder) }
        var connections: [NetworkConnection] = []
        var served: [String: String] = [:]
        for name in names {
            let path = folder + "/" + name
            guard !name.hasPrefix("."), !name.hasPrefix("-"), !name.contains("\n") else {
                throw ProvisioningError(.invalidNetwork, "not a usable connection file name", path: path)
            }
            guard let info = try? files.info(of: path), info.type == .regular else {
                throw ProvisioningError(.invalidNetwork, "not a regular file", path: path)
            }
            guard info.size <= maxSize, let bytes = try? files.contents(of: path, limit: maxSize), bytes.count <= maxSize,
                let content = String(data: Data(bytes), encoding: .utf8)
            else { throw ProvisioningError(.invalidNetwork, "not a UTF-8 keyfile of at most \(maxSize) bytes", path: path) }
            let connection = NetworkConnection(name: name, content: content, hasSecret: hasSecret(content))
            if let other = served.updateValue(name, forKey: connection.servedName) {
                throw ProvisioningError(.invalidNetwork, "served under the same name as \(other) (\(connection.servedName)); rename one", path: path)
            }
            connections.append(connection)
        }
        return connections
    }

    /// Whether a keyfile sets any secret key.
    public static func hasSecret(_ content: String) -> Bool {
        content.split(whereSeparator: \.isNewline).contains { line in
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { return false }
            return secretKeys.contains(line[..<equals].trimmingCharacters(in: .whitespaces))
        }
    }

    /// The pin the boot guard checks the keys qube's copy against: sha256 and sha512 lines.
    var pin: String { String(decoding: ChecksumPin(of: Array(content.utf8)).fileBytes, as: UTF8.self) }
}

extension NetworkConnection {
    /// The connection `name` with keyfile `content`, secret when the content sets a secret key.
    public init(name: String, content: String) { self.init(name: name, content: content, hasSecret: Self.hasSecret(content)) }
}
