import Glibc

/// One connection to a Unix stream socket: the only file in this module that
/// calls the operating system.
struct UnixSocket {
    let descriptor: Int32

    /// Connects to the socket at `path`.
    init(path: String, call: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            throw AdminError.transport(call: call, detail: "socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Self.failure("socket", path, call) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = Self.failure("connect", path, call)
            Glibc.close(descriptor)
            throw error
        }
        self.descriptor = descriptor
    }

    static func failure(_ operation: String, _ path: String, _ call: String) -> AdminError {
        .transport(call: call, detail: "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))")
    }

    /// Writes everything, then half-closes the write side (qubesd starts on EOF).
    func send(_ bytes: [UInt8], call: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw Self.failure("send", "qubesd socket", call)
            }
            offset += written
        }
        shutdown(descriptor, Int32(SHUT_WR))
    }

    /// Reads what is available, waiting at most `timeout` seconds; an empty
    /// result means EOF (a reset counts as EOF: the reply so far is all there is).
    func receive(timeout: Double, call: String) throws -> [UInt8] {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&poller, 1, Int32(min(timeout * 1000, Double(Int32.max))))
            if ready < 0 && errno == EINTR { continue }
            guard ready >= 0 else { throw Self.failure("poll", "qubesd socket", call) }
            guard ready > 0 else { throw AdminError.timeout(call: call, seconds: timeout) }
            break
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress!, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && errno == ECONNRESET { return [] }
            guard count >= 0 else { throw Self.failure("recv", "qubesd socket", call) }
            return Array(chunk[0..<count])
        }
    }

    func close() { Glibc.close(descriptor) }

    /// Seconds on the monotonic clock.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// How to reach qubesd: the socket path and limits (docs/admin-api.md, "Limits").
public struct AdminTransport: Sendable {
    public var socketPath: String
    /// Seconds to wait for each part of a reply.
    public var timeout: Double
    /// Seconds the whole reply may take, however it trickles in.
    public var deadline: Double
    /// Largest reply accepted.
    public var maximumReplySize: Int

    public static let defaultSocket = "/var/run/qubesd.sock"

    public init(socketPath: String = defaultSocket, timeout: Double = 300, deadline: Double = 1800, maximumReplySize: Int = 64 << 20) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.deadline = deadline
        self.maximumReplySize = maximumReplySize
    }

    /// Sends one request on a new connection and reads the reply to EOF.
    /// - Throws: `AdminError.timeout` when a part takes longer than `timeout` or the whole longer than
    ///   `deadline`; `.malformedReply` past `maximumReplySize`.
    public func send(_ request: AdminRequest) throws -> AdminReply {
        let bytes = try request.encoded()
        let socket = try UnixSocket(path: socketPath, call: request.call)
        defer { socket.close() }
        let end = UnixSocket.now() + deadline
        try socket.send(bytes, call: request.call)
        var reply: [UInt8] = []
        while true {
            let left = end - UnixSocket.now()
            guard left > 0 else { throw AdminError.timeout(call: request.call, seconds: deadline) }
            let chunk: [UInt8]
            do {
                chunk = try socket.receive(timeout: min(timeout, left), call: request.call)
            } catch AdminError.timeout {
                throw AdminError.timeout(call: request.call, seconds: left < timeout ? deadline : timeout)
            }
            if chunk.isEmpty { break }
            reply.append(contentsOf: chunk)
            if reply.count > maximumReplySize {
                throw AdminError.malformedReply(call: request.call, detail: "reply larger than \(maximumReplySize) bytes")
            }
        }
        return try AdminReply.decode(reply, call: request.call)
    }

    /// Opens `admin.Events` (all qubes when `qube` is dom0) and hands each
    /// event to `handler` until it returns false or the stream ends.
    public func events(of qube: String = "dom0", _ handler: (AdminEvent) throws -> Bool) throws {
        let request = AdminRequest(method: "admin.Events", destination: qube)
        let socket = try UnixSocket(path: socketPath, call: request.call)
        defer { socket.close() }
        try socket.send(try request.encoded(), call: request.call)
        var decoder = EventDecoder()
        while true {
            let chunk = try socket.receive(timeout: Double.infinity, call: request.call)
            if chunk.isEmpty {
                if decoder.hasPartialEvent {
                    throw AdminError.malformedReply(call: request.call, detail: "stream ended inside an event")
                }
                return
            }
            for event in try decoder.feed(chunk) where try !handler(event) { return }
        }
    }
}
