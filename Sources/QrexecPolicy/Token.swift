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
    public static func parse(_ text: String, as context: Context) -> Result<Token, TokenError> {
        let token: Token
        if text.utf8.first != UInt8(ascii: "@") {
            token = text.isBytes("dom0") ? .adminVM : text.isBytes("*") ? .any : .qube(String(text))
        } else if let exact = exactTokens.first(where: { text.isBytes($0.text) }) {
            token = exact.token
        } else if let value = text.dropPrefix("@type:") {
            token = .type(String(value))
        } else if let value = text.dropPrefix("@tag:") {
            guard !value.isEmpty else { return .failure(TokenError("invalid empty @tag: token: '\(text)'")) }
            token = .tag(String(value))
        } else if let value = text.dropPrefix("@dispvm:@tag:") {
            token = .dispVMTag(String(value))
        } else if let value = text.dropPrefix("@dispvm:") {
            token = .dispVMTemplate(String(value))
        } else {
            return .failure(TokenError("invalid \(context.rawValue) token: '\(text)'"))
        }
        guard context.admits(token) else { return .failure(TokenError("invalid \(context.rawValue) token: '\(text)'")) }
        return .success(token)
    }

    private static let exactTokens: [(text: String, token: Token)] = [
        ("@anyvm", .anyVM), ("@adminvm", .adminVM), ("@default", .default), ("@dispvm", .dispVM),
    ]
}

/// Why a token was refused, worded as qrexec words it.
public struct TokenError: Error, Sendable, Hashable {
    public var message: String

    init(_ message: String) { self.message = message }
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
