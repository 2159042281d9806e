import SystemLayer

/// Why provisioning stopped: what kind of failure (`code`), the qube and the
/// path it concerns, and the error it wraps, if any.
public struct ProvisioningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The closed set of failures.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// A value given on the command line (`--in-qube`, a token, a file name, a password, a qube name) is refused.
        case invalidArgument
        /// This build lacks a component's template text (a packaging mistake).
        case missingTemplateText
        /// A qube of the manifest's name exists with another class.
        case qubeConflict
        /// Something the plan needs is not installed (a base template, the mirage kernel).
        case missingPrerequisite
        /// The static in-qube tools are missing or need the Swift runtime libraries.
        case invalidBinaries
        /// A template path holds something that is neither a file, a folder nor a link.
        case unsupportedEntry
        /// The generated qrexec policy does not parse or does not read back.
        case invalidPolicy
        /// A step runs inside a qube that no `--in-qube` reaches.
        case noExecutor
        /// A file or folder's owner is not in the root folder's passwd or group file.
        case unknownOwner
        /// A command in a qube or in dom0 could not run, failed, or printed too much.
        case commandFailed
        /// A qube's service or command answered something unexpected.
        case unexpectedAnswer
        /// The plan has blockers, so nothing was applied.
        case blocked
        /// A source file changed between the plan and the apply.
        case changedSincePlan
        /// The journal is unreadable, or does not match what it records.
        case invalidJournal
        /// A network connection file or folder is refused.
        case invalidNetwork
        /// A `files:` folder or its permissions list is refused.
        case invalidFiles
        /// A system call failed.
        case ioFailure
    }

    public var code: Code
    /// What went wrong, after the qube and the path.
    public var message: String
    /// The qube it concerns.
    public var qube: String?
    /// The file or folder it concerns.
    public var path: String?
    /// The error this one wraps.
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, qube: String? = nil, path: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.qube = qube
        self.path = path
        self.cause = cause
    }

    /// `[qube: ][path: ]message[: cause]`; a wrapped system call failure shows its reason.
    public var description: String {
        let subject = [qube, path].compactMap { $0 }.map { $0 + ": " }.joined()
        return subject + message + (causeText.map { ": " + $0 } ?? "")
    }

    private var causeText: String? {
        guard let cause else { return nil }
        return (cause as? SystemError)?.reason ?? "\(cause)"
    }

    public static func == (lhs: ProvisioningError, rhs: ProvisioningError) -> Bool {
        (lhs.code, lhs.message, lhs.qube, lhs.path, lhs.causeText) == (rhs.code, rhs.message, rhs.qube, rhs.path, rhs.causeText)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(description)
    }
}
