import LQCommon
import SystemLayer

/// Why a split-service request was refused. Names the caller, the requested name and the path, never
/// the content of a secret.
public struct SplitError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// No caller, or not a qube name.
        case caller
        /// The requested name or token breaks the grammar.
        case argument
        /// No such folder, file or token.
        case notFound = "not-found"
        /// A symlink, a special file, a hard link, or an owner or mode that others could use.
        case unsafe
        /// Larger than the limit.
        case tooLarge = "too-large"
        /// A password store or pin that is not in the strict format.
        case format
        /// The store does not match its checksum pin, or has none.
        case pin
        /// A system call failed.
        case system
        /// The qube serving the request refused it or could not be reached.
        case remote
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// A name for messages: printable, escaped, at most 80 characters.
func shown(_ bytes: [UInt8]) -> String {
    let text = displayName(Array(bytes.prefix(80)))
    return bytes.count > 80 ? text + "…" : text
}

/// A one-component name taken from a qrexec argument (a file name or a password token), checked with
/// `isValidArgumentName`; a refusal says which rule it breaks. `%2F`, `/`, NUL and spaces all fail the
/// character set.
public func validateArgument(_ bytes: [UInt8], what: String) throws(SplitError) -> String {
    if isValidArgumentName(bytes) { return String(decoding: bytes, as: UTF8.self) }
    guard !bytes.isEmpty else { throw SplitError(.argument, "refused: empty \(what)") }
    guard bytes.count <= 64 else { throw SplitError(.argument, "refused: \(what) longer than 64 bytes (\(bytes.count))") }
    if let bad = bytes.first(where: { !isQrexecArgumentByte($0) }) {
        throw SplitError(.argument, "refused: \(what) '\(shown(bytes))' has the byte \(shown([bad])); allowed: A-Z a-z 0-9 _ . + -")
    }
    throw SplitError(.argument, "refused: \(what) '\(shown(bytes))' starts with '.' or '-'")
}

/// The caller from `QREXEC_REMOTE_DOMAIN`, checked to be a qube name.
public func validateCaller(_ caller: String?) throws(SplitError) -> String {
    guard let caller, !caller.isEmpty else { throw SplitError(.caller, "refused: no caller (not started by qrexec: QREXEC_REMOTE_DOMAIN is unset)") }
    guard isValidQubeName(caller) else { throw SplitError(.caller, "refused: caller '\(shown(Array(caller.utf8)))' is not a qube name") }
    return caller
}
