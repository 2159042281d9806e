/// The qubesd Admin API wire format (docs/admin-api.md, "Request framing", "Reply framing"): requests,
/// replies and events, encoded and decoded byte for byte.

/// One request: `method[+arg] SP src SP dest_type SP dest NUL payload`.
public struct AdminRequest: Sendable, Hashable {
    public var method: String
    public var argument: String
    public var source: String
    /// A qube name (`dom0` for global calls).
    public var destination: String
    public var payload: [UInt8]

    /// The most bytes qubesd accepts in one request.
    public static let maximumSize = 65536

    public init(method: String, argument: String = "", source: String = "dom0", destination: String = "dom0", payload: [UInt8] = []) {
        self.method = method
        self.argument = argument
        self.source = source
        self.destination = destination
        self.payload = payload
    }

    /// `method+arg`, as qubesadmin sends it (the `+` even with no argument).
    public var call: String { method + "+" + argument }

    /// The request bytes.
    /// - Throws: `AdminError.requestTooLarge` above 64 KiB.
    public func encoded() throws -> [UInt8] {
        var bytes = Array("\(method)+\(argument) \(source) name \(destination)".utf8)
        bytes.append(0)
        bytes.append(contentsOf: payload)
        guard bytes.count <= Self.maximumSize else { throw AdminError.requestTooLarge(call: call, size: bytes.count) }
        return bytes
    }

    /// Parses request bytes as qubesd does.
    /// - Returns: `nil` on a framing error (qubesd then drops the connection).
    public static func decode(_ bytes: [UInt8]) -> AdminRequest? {
        guard bytes.count <= maximumSize, let nul = bytes.firstIndex(of: 0) else { return nil }
        let header = bytes[..<nul]
        guard header.allSatisfy({ $0 < 0x80 }) else { return nil }
        let fields = header.split(separator: 0x20, omittingEmptySubsequences: false)
        guard fields.count >= 4, fields[0..<4].allSatisfy({ !$0.isEmpty }) else { return nil }
        let destinationType = String(decoding: fields[2], as: UTF8.self)
        var destination = String(decoding: Array(fields[3...].joined(separator: [0x20])), as: UTF8.self)
        switch destinationType {
        case "name": break
        case "keyword" where destination == "adminvm": destination = "dom0"
        default: return nil
        }
        guard !destination.isEmpty, !destination.contains(" ") else { return nil }
        let methodAndArgument = String(decoding: fields[0], as: UTF8.self)
        let plus = methodAndArgument.firstIndex(of: "+")
        return AdminRequest(
            method: String(methodAndArgument[..<(plus ?? methodAndArgument.endIndex)]),
            argument: plus.map { String(methodAndArgument[methodAndArgument.index(after: $0)...]) } ?? "",
            source: String(decoding: fields[1], as: UTF8.self), destination: destination,
            payload: Array(bytes[(nul + 1)...]))
    }
}

/// A complete, non-streaming reply.
public enum AdminReply: Sendable, Hashable {
    /// `0\0` + body.
    case success([UInt8])
    /// `2\0Class\0traceback\0message\0`.
    case exception(className: String, traceback: String, message: String)

    /// The reply bytes.
    public var encoded: [UInt8] {
        switch self {
        case .success(let body): return [UInt8(ascii: "0"), 0] + body
        case .exception(let className, let traceback, let message):
            var bytes: [UInt8] = [UInt8(ascii: "2"), 0]
            for field in [className, traceback, message] {
                bytes.append(contentsOf: field.utf8)
                bytes.append(0)
            }
            return bytes
        }
    }

    /// Parses a whole reply (read to EOF).
    /// - Throws: `AdminError` for an empty, truncated or malformed reply.
    public static func decode(_ bytes: [UInt8], call: String) throws -> AdminReply {
        guard !bytes.isEmpty else { throw AdminError.emptyReply(call: call) }
        guard bytes.count >= 2, bytes[1] == 0 else {
            throw AdminError.malformedReply(call: call, detail: "reply does not start with a type byte and NUL")
        }
        switch bytes[0] {
        case UInt8(ascii: "0"):
            return .success(Array(bytes[2...]))
        case UInt8(ascii: "2"):
            let fields = bytes[2...].split(separator: 0, omittingEmptySubsequences: false)
            guard fields.count == 4, fields[3].isEmpty, bytes.last == 0 else {
                throw AdminError.malformedReply(call: call, detail: "exception reply is not three NUL-terminated fields")
            }
            let texts = try fields[0..<3].map { try text($0, call: call) }
            guard !texts[0].isEmpty else { throw AdminError.malformedReply(call: call, detail: "exception without class name") }
            return .exception(className: texts[0], traceback: texts[1], message: texts[2])
        case UInt8(ascii: "1"):
            throw AdminError.malformedReply(call: call, detail: "event in the reply of a non-streaming call")
        default:
            throw AdminError.malformedReply(call: call, detail: "unknown reply type \(bytes[0])")
        }
    }

    /// The body of a success as text, or the exception as an error.
    public func text(call: String) throws -> String {
        switch self {
        case .success(let body): return try Self.text(body[...], call: call)
        case .exception(let className, _, let message): throw AdminError.qubes(className: className, message: message)
        }
    }

    static func text(_ bytes: ArraySlice<UInt8>, call: String) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw AdminError.malformedReply(call: call, detail: "reply is not UTF-8")
        }
        return text
    }
}

/// One event of `admin.Events`: `1\0subject\0event\0(key\0value\0)*\0`.
public struct AdminEvent: Sendable, Hashable {
    /// The qube the event is about; empty for system-wide events.
    public var subject: String
    public var name: String
    public var properties: [Property]

    public struct Property: Sendable, Hashable {
        public var key: String
        public var value: String

        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    public init(subject: String, name: String, properties: [Property] = []) {
        self.subject = subject
        self.name = name
        self.properties = properties
    }

    public var encoded: [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "1"), 0]
        for field in [subject, name] + properties.flatMap({ [$0.key, $0.value] }) {
            bytes.append(contentsOf: field.utf8)
            bytes.append(0)
        }
        bytes.append(0)
        return bytes
    }
}

/// Splits an event stream into events, however the bytes arrive.
public struct EventDecoder: Sendable {
    private var buffer: [UInt8] = []
    /// Largest single event accepted.
    public var maximumEventSize: Int

    public init(maximumEventSize: Int = 1 << 20) { self.maximumEventSize = maximumEventSize }

    /// Adds received bytes and returns the events now complete.
    /// - Throws: `AdminError.malformedReply` on anything but events, or an exception frame as `.qubes`.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [AdminEvent] {
        buffer.append(contentsOf: bytes)
        var events: [AdminEvent] = []
        while let (event, length) = try nextEvent() {
            events.append(event)
            buffer.removeFirst(length)
        }
        if buffer.count > maximumEventSize { throw Self.tooLarge(maximumEventSize) }
        return events
    }

    private static func tooLarge(_ limit: Int) -> AdminError {
        AdminError.malformedReply(call: "admin.Events", detail: "event larger than \(limit) bytes")
    }

    /// Whether a partial event is pending (at EOF this means truncation).
    public var hasPartialEvent: Bool { !buffer.isEmpty }

    private func nextEvent() throws -> (AdminEvent, Int)? {
        guard buffer.count >= 2 else { return nil }
        if buffer[0] == UInt8(ascii: "2") && buffer[1] == 0 {
            let fields = buffer[2...].split(separator: 0, omittingEmptySubsequences: false)
            guard fields.count >= 4 else { return nil }
            let reply = try AdminReply.decode(Array(buffer[..<(2 + fields[0..<3].reduce(0) { $0 + $1.count + 1 })]), call: "admin.Events")
            _ = try reply.text(call: "admin.Events")
        }
        guard buffer[0] == UInt8(ascii: "1"), buffer[1] == 0 else {
            throw AdminError.malformedReply(call: "admin.Events", detail: "stream item is not an event")
        }
        var fields: [String] = []
        var start = 2
        var index = 2
        while index < buffer.count {
            if buffer[index] == 0 {
                if index == start && fields.count >= 2 && fields.count % 2 == 0 {
                    // An event over the limit is refused however it arrives, not only while it is partial.
                    guard index < maximumEventSize else { throw Self.tooLarge(maximumEventSize) }
                    let properties = stride(from: 2, to: fields.count, by: 2).map { AdminEvent.Property(fields[$0], fields[$0 + 1]) }
                    return (AdminEvent(subject: fields[0], name: fields[1], properties: properties), index + 1)
                }
                fields.append(try AdminReply.text(buffer[start..<index], call: "admin.Events"))
                start = index + 1
            }
            index += 1
        }
        return nil
    }
}
