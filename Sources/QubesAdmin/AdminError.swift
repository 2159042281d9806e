import QubesStore

/// Why an Admin API call failed.
///
/// `qubes` keeps qubesd's exception class name and message as data, so a
/// user sees what `qvm-*` would show; the other cases are transport or
/// protocol failures on the client side.
public enum AdminError: Error, Sendable, Hashable, CustomStringConvertible {
    /// qubesd answered with an exception.
    case qubes(className: String, message: String)
    /// qubesd closed the connection without a reply: a framing error or an
    /// unexpected exception inside qubesd. The outcome is unknown.
    case emptyReply(call: String)
    /// The reply does not follow the framing (truncated, garbage, too big).
    case malformedReply(call: String, detail: String)
    /// The request is larger than qubesd accepts (64 KiB).
    case requestTooLarge(call: String, size: Int)
    /// The socket could not be reached or broke.
    case transport(call: String, detail: String)
    /// No complete reply within the time limit.
    case timeout(call: String, seconds: Double)

    /// The qubesd exception class, when qubesd raised one.
    public var className: String? {
        if case .qubes(let className, _) = self { return className }
        return nil
    }

    public var description: String {
        switch self {
        case .qubes(let className, let message): "\(className): \(message)"
        case .emptyReply(let call): "\(call): got empty response from qubesd (the outcome is unknown)"
        case .malformedReply(let call, let detail): "\(call): malformed reply from qubesd: \(detail)"
        case .requestTooLarge(let call, let size): "\(call): request of \(size) bytes is larger than 65536"
        case .transport(let call, let detail): "\(call): \(detail)"
        case .timeout(let call, let seconds): "\(call): no reply from qubesd within \(seconds) s"
        }
    }

    /// The Admin API form of a store error: its kind is qubesd's class;
    /// internal errors that make qubesd drop the connection become an empty reply.
    public init(_ error: StoreError, call: String) {
        switch error.kind {
        case .attributeError, .assertionError, .typeError, .keyError, .indexError, .notImplementedError, .osError:
            self = .emptyReply(call: call)
        default:
            self = .qubes(className: error.kind.rawValue, message: error.message)
        }
    }
}
