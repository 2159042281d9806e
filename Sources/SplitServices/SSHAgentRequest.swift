/// One request of the SSH agent protocol as a client qube sends it to core-keys (docs/split-services.md,
/// "Split SSH"): a 4-byte big-endian length, then that many bytes whose first is the message type.
/// Only listing the keys and signing pass to the agent; everything else (adding, removing or locking
/// keys, extensions) is answered with `SSH_AGENT_FAILURE` without reaching it. The client is untrusted:
/// every length is checked against what is left, nothing is read past the frame.
public enum SSHAgentRequest: Sendable, Hashable {
    /// `SSH_AGENTC_REQUEST_IDENTITIES` (11), with no payload.
    case listKeys
    /// `SSH_AGENTC_SIGN_REQUEST` (13): string key blob, string data, uint32 flags.
    case sign(keyBlob: [UInt8], dataCount: Int, flags: UInt32)
    /// Anything else, or a list or sign request that is not well formed: answered with a failure.
    case refused(type: UInt8?, reason: String)

    /// The largest message either side sends, as OpenSSH's agent (`AGENT_MAX_LEN`, 256 KiB).
    public static let maxLength = 256 * 1024
    /// A key blob larger than this is no key OpenSSH makes (an RSA-16384 public key is ~2 KiB).
    public static let maxKeyBlob = 16 * 1024
    /// `SSH_AGENT_FAILURE`, framed.
    public static let failure: [UInt8] = [0, 0, 0, 1, 5]

    /// The length a frame header announces; `nil` when it is zero or over `maxLength`.
    public static func length(header: [UInt8]) -> Int? {
        guard header.count == 4 else { return nil }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        return (1...maxLength).contains(length) ? length : nil
    }

    /// Classifies a frame's body (without its length header).
    public init(body: [UInt8]) {
        guard let type = body.first else {
            self = .refused(type: nil, reason: "empty message")
            return
        }
        var reader = Reader(bytes: body[1...])
        switch type {
        case 11:
            self = reader.atEnd ? .listKeys : .refused(type: type, reason: "a key list request carries no data")
        case 13:
            guard let key = reader.string(limit: Self.maxKeyBlob), let data = reader.string(limit: Self.maxLength),
                  let flags = reader.uint32(), reader.atEnd
            else {
                self = .refused(type: type, reason: "a malformed sign request")
                return
            }
            self = .sign(keyBlob: Array(key), dataCount: data.count, flags: flags)
        default:
            self = .refused(type: type, reason: "message type \(type) is not list or sign")
        }
    }

    /// Reads SSH wire types from a slice, never past its end.
    struct Reader {
        var bytes: ArraySlice<UInt8>

        var atEnd: Bool { bytes.isEmpty }

        mutating func uint32() -> UInt32? {
            guard bytes.count >= 4 else { return nil }
            defer { bytes = bytes.dropFirst(4) }
            return bytes.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
        }

        /// A `string`: uint32 length, then that many bytes, at most `limit`.
        mutating func string(limit: Int) -> ArraySlice<UInt8>? {
            guard let length = uint32(), length <= limit, Int(length) <= bytes.count else { return nil }
            defer { bytes = bytes.dropFirst(Int(length)) }
            return bytes.prefix(Int(length))
        }
    }
}
