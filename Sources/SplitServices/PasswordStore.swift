/// A per-caller password store in core-keys, `password-<caller>`: data, never executed.
///
/// ```
/// lq-splitpassword 1
/// <token>\t<base64(password)>
/// ```
/// The first line is exactly the header; then one line per token, newest first, each token one
/// qrexec argument (`validateArgument`) followed by one tab and canonical, non-empty base64; every
/// line ends in `\n`; no blank lines, no `\r`, no token twice; passwords of at most 4096 bytes.
/// Errors name the line, never a password.
public struct PasswordStore: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var token: String
        public var password: [UInt8]
    }

    public static let header = "lq-splitpassword 1"
    public static let maxSize = 1 << 20
    public static let maxPassword = 4096

    public private(set) var entries: [Entry] = []

    public init() {}

    /// The store file's name for a caller.
    public static func fileName(_ caller: String) -> String { "password-\(caller)" }

    public static func parse(_ bytes: [UInt8], name: String) throws(SplitError) -> PasswordStore {
        guard bytes.count <= maxSize else { throw SplitError(.tooLarge, "\(name): larger than \(maxSize) bytes") }
        guard bytes.last == 0x0A else { throw SplitError(.format, "\(name): does not end with a newline") }
        let lines = bytes.dropLast().split(separator: 0x0A, omittingEmptySubsequences: false)
        guard lines.first.map(Array.init) == Array(header.utf8) else {
            throw SplitError(.format, "\(name) line 1: not the header '\(header)'")
        }
        var store = PasswordStore()
        var seen: Set<String> = []
        for (index, line) in lines.enumerated().dropFirst() {
            let number = index + 1
            let fields = line.split(separator: 0x09, omittingEmptySubsequences: false)
            guard fields.count == 2 else { throw SplitError(.format, "\(name) line \(number): not TOKEN<tab>BASE64") }
            let token: String
            do {
                token = try validateArgument(Array(fields[0]), what: "token")
            } catch {
                throw SplitError(.format, "\(name) line \(number): \(error.message)")
            }
            guard let password = Base64.decode(fields[1]), !password.isEmpty else {
                throw SplitError(.format, "\(name) line \(number): the password of \(token) is not canonical, non-empty base64")
            }
            guard password.count <= maxPassword else {
                throw SplitError(.format, "\(name) line \(number): the password of \(token) is longer than \(maxPassword) bytes")
            }
            guard seen.insert(token).inserted else { throw SplitError(.format, "\(name) line \(number): token \(token) given twice") }
            store.entries.append(Entry(token: token, password: password))
        }
        return store
    }

    public var bytes: [UInt8] {
        var output = Array((Self.header + "\n").utf8)
        for entry in entries {
            output += Array(entry.token.utf8) + [0x09] + Base64.encode(entry.password) + [0x0A]
        }
        return output
    }

    public func password(for token: String) -> [UInt8]? {
        entries.first { $0.token == token }?.password
    }

    /// Sets a token's password; the token moves to the front (newest first).
    public mutating func set(_ token: String, _ password: [UInt8]) {
        entries.removeAll { $0.token == token }
        entries.insert(Entry(token: token, password: password), at: 0)
    }
}
