import Glibc

/// A qube token of a rule or a request, as in qrexec's `VMToken` (docs/qrexec-policy.md, "Tokens").
///
/// `dom0` and `@adminvm` are the same token. A literal is kept as written:
/// a qube name, or `uuid:<uuid>`.
public enum Token: Sendable, Hashable, CustomStringConvertible {
    /// `*`: anything, dom0 included.
    case any
    /// `@anyvm`: every qube except dom0.
    case anyVM
    /// `@adminvm` (also spelled `dom0`).
    case adminVM
    /// A qube by name or by `uuid:<uuid>`.
    case qube(String)
    /// `@type:TYPE`.
    case type(String)
    /// `@tag:TAG`.
    case tag(String)
    /// `@default`.
    case `default`
    /// `@dispvm`: a disposable from the source's `default_dispvm`.
    case dispVM
    /// `@dispvm:NAME`.
    case dispVMTemplate(String)
    /// `@dispvm:@tag:TAG`.
    case dispVMTag(String)

    /// Where a token appears; each place admits a different set (docs/qrexec-policy.md, "Tokens").
    public enum Context: String, Sendable, CaseIterable {
        case source, target, redirect, intendedTarget = "intendedtarget"

        func admits(_ token: Token) -> Bool {
            switch (self, token) {
            case (_, .adminVM), (_, .qube): return true
            case (.source, .any), (.source, .anyVM), (.source, .type), (.source, .tag),
                 (.source, .dispVMTemplate), (.source, .dispVMTag): return true
            case (.target, _): return true
            case (.redirect, .dispVM), (.redirect, .dispVMTemplate): return true
            case (.intendedTarget, .default), (.intendedTarget, .dispVM), (.intendedTarget, .dispVMTemplate): return true
            default: return false
            }
        }
    }

    /// The token as written in the new syntax (`dom0` comes back as `@adminvm`).
    public var description: String {
        switch self {
        case .any: return "*"
        case .anyVM: return "@anyvm"
        case .adminVM: return "@adminvm"
        case .qube(let name): return name
        case .type(let type): return "@type:" + type
        case .tag(let tag): return "@tag:" + tag
        case .default: return "@default"
        case .dispVM: return "@dispvm"
        case .dispVMTemplate(let name): return "@dispvm:" + name
        case .dispVMTag(let tag): return "@dispvm:@tag:" + tag
        }
    }

    /// Reads `text` as a token for `context`, or says why it cannot be one
    /// (the message as qrexec words it; the caller adds the place).
    ///
    /// The walk is the parser's (docs/qrexec-policy.md, "Tokens"): text not
    /// starting with `@` (other than `*`) is a qube name; else the keywords
    /// this place admits, then its prefixes in the order `@type:`, `@tag:`,
    /// `@dispvm:`, `@dispvm:@tag:`. A prefix with nothing after it is an
    /// empty token; one followed by another `@` gives way to a longer prefix,
    /// and when none is left the token is invalid.
    public static func parse(_ text: String, as context: Context) -> Result<Token, TokenError> {
        guard !text.isEmpty else { return .failure(TokenError("invalid empty \(context.rawValue) token")) }
        if text.utf8.first != UInt8(ascii: "@") && !text.isBytes("*") {
            return .success(text.isBytes("dom0") ? .adminVM : .qube(text))
        }
        if let exact = exactTokens.first(where: { text.isBytes($0.text) }), context.admits(exact.token) {
            return .success(exact.token)
        }
        for prefix in prefixes where context.admits(prefix.make("")) {
            guard let value = text.dropPrefix(prefix.text) else { continue }
            if value.isEmpty { return .failure(TokenError("invalid empty \(prefix.text) token: '\(text)'")) }
            if value.utf8.first == UInt8(ascii: "@") { continue }
            return .success(prefix.make(String(value)))
        }
        return .failure(TokenError("invalid \(context.rawValue) token: '\(text)'"))
    }

    private static let exactTokens: [(text: String, token: Token)] = [
        ("*", .any), ("@anyvm", .anyVM), ("@adminvm", .adminVM), ("@default", .default), ("@dispvm", .dispVM),
    ]

    private static let prefixes: [(text: String, make: @Sendable (String) -> Token)] = [
        ("@type:", Token.type), ("@tag:", Token.tag), ("@dispvm:", Token.dispVMTemplate), ("@dispvm:@tag:", Token.dispVMTag),
    ]
}

/// Why a token was refused, worded as qrexec words it.
public struct TokenError: Error, Sendable, Hashable {
    public var message: String

    init(_ message: String) { self.message = message }
}

extension String {
    /// Byte-for-byte equality, the lengths first, then one `memcmp`.
    func isBytes(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        let same = utf8.withContiguousStorageIfAvailable { left in
            other.utf8.withContiguousStorageIfAvailable { right in
                left.isEmpty || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
            }
        }
        return (same ?? nil) ?? utf8.elementsEqual(other.utf8)
    }
}

extension StringProtocol {
    /// Byte-for-byte equality (Swift's `==` would also accept canonically equivalent text).
    func isBytes(_ other: some StringProtocol) -> Bool { utf8.elementsEqual(other.utf8) }

    /// Code point order, as Python and qrexec sort names.
    func precedes(_ other: some StringProtocol) -> Bool { utf8.lexicographicallyPrecedes(other.utf8) }

    /// The rest after `prefix`, or `nil` when it does not start with it (compared byte by byte).
    func dropPrefix(_ prefix: String) -> SubSequence? {
        utf8.starts(with: prefix.utf8) ? self[utf8.index(startIndex, offsetBy: prefix.utf8.count)...] : nil
    }
}

/// The character rules of service names and arguments (docs/qrexec-policy.md, "Rule grammar").
enum Names {
    /// `A-Z a-z 0-9 - . _`, and for arguments also `+`.
    static func isNameByte(_ byte: UInt8, plus: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        case UInt8(ascii: "+"): return plus
        default: return false
        }
    }

    /// The distinct characters of `text` that break the rule, in order of appearance.
    static func invalidCharacters(_ text: String, plus: Bool) -> [Character] {
        var seen: [Character] = []
        for character in text where !(character.utf8.count == 1 && isNameByte(character.utf8.first!, plus: plus)) {
            if !seen.contains(where: { String($0).utf8.elementsEqual(String(character).utf8) }) { seen.append(character) }
        }
        return seen
    }

    /// `('/',)` as Python prints a tuple of characters.
    static func tuple(_ characters: [Character]) -> String {
        let items = characters.map { "'\($0)'" }
        return "(" + items.joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
    }
}
