import LQCommon
import SystemLayer

/// `liteqube.SplitSSH` in core-keys (docs/split-services.md, "Split SSH"): one connection of a client
/// qube's agent socket. The service runs this under `ssh-agent COMMAND`, so the agent is private to the
/// connection and exits with it; its socket is `agentSocket` (`SSH_AUTH_SOCK`). The agent gets the
/// caller's keys only (`<store>/<caller>/*`, each an OpenSSH private key without passphrase), and sees
/// only the list and sign requests `SSHAgentRequest` passes. dom0 hears "<caller> signs with its ssh key"
/// for each signature.
public struct SplitSSHServer: Sendable {
    public var store: String
    public var agentSocket: String?
    public var sshAdd: String
    public var context: ServiceContext

    /// The largest key file loaded (an OpenSSH RSA-16384 private key is about 12 KiB).
    public static let maxKeySize = 16 * 1024
    /// The most keys one qube may have.
    public static let maxKeys = 32

    public init(store: String = "/home/user/.ssh", agentSocket: String?, sshAdd: String = "/usr/bin/ssh-add", context: ServiceContext = ServiceContext()) {
        self.store = store
        self.agentSocket = agentSocket
        self.sshAdd = sshAdd
        self.context = context
    }

    /// What a connection did.
    public struct Summary: Sendable, Hashable {
        public var keys: [String]
        public var passed = 0
        public var refused = 0

        public init(keys: [String], passed: Int = 0, refused: Int = 0) {
            (self.keys, self.passed, self.refused) = (keys, passed, refused)
        }
    }

    /// Serves one connection, requests from `input` and answers to `output`, until the client closes it.
    public func serve(caller: String?, input: Descriptor = 0, output: Descriptor = 1) throws(SplitError) -> Summary {
        context.keepAlive?()
        let caller = try validateCaller(caller)
        guard let agentSocket, !agentSocket.isEmpty else {
            throw SplitError(.system, "refused: no agent (SSH_AUTH_SOCK is unset: run through ssh-agent)")
        }
        var summary = Summary(keys: try loadKeys(caller: caller, agentSocket: agentSocket))
        let agent: Descriptor
        do {
            agent = try context.system.connect(socket: agentSocket)
        } catch {
            throw SplitError(.system, "\(agentSocket): \(error)")
        }
        defer { context.system.close(agent) }
        while let body = try frame(from: input, what: "\(caller)'s request") {
            let request = SSHAgentRequest(body: body)
            if case .refused = request {
                summary.refused += 1
                try send(SSHAgentRequest.failure, to: output)
                continue
            }
            if case .sign = request { context.notifier?.notify(qube: caller, message: "\(caller) signs with its ssh key") }
            summary.passed += 1
            try send(Self.framed(body), to: agent)
            guard let answer = try frame(from: agent, what: "the agent's answer") else {
                throw SplitError(.system, "\(agentSocket): the agent closed the connection")
            }
            try send(Self.framed(answer), to: output)
        }
        return summary
    }

    /// Adds each of the caller's keys to the agent (`ssh-add -q -`, the key on stdin); their names.
    func loadKeys(caller: String, agentSocket: String) throws(SplitError) -> [String] {
        let secure = SecureFile(system: context.system)
        let folder = Array(caller.utf8)
        let names = try secure.names(store, [folder])
        guard !names.isEmpty else { throw SplitError(.notFound, "\(store)/\(caller): no ssh keys") }
        guard names.count <= Self.maxKeys else { throw SplitError(.tooLarge, "\(store)/\(caller): \(names.count) keys, over \(Self.maxKeys); refused") }
        var loaded: [String] = []
        for name in names {
            let shownName = "\(store)/\(caller)/\(shown(name))"
            _ = try validateArgument(name, what: "key file name \(shownName)")
            let key = try secure.read(store, [folder, name], limit: Self.maxKeySize).bytes
            let result: ProcessOutput
            do {
                result = try context.system.run(sshAdd, ["-q", "-"], input: key, outputLimit: 4096, environment: ["SSH_AUTH_SOCK": agentSocket])
            } catch {
                throw SplitError(.system, "cannot run \(sshAdd): \(error)")
            }
            guard result.status == 0 else { throw SplitError(.format, "\(shownName): ssh-add refused the key (exit \(result.status))") }
            loaded.append(String(decoding: name, as: UTF8.self))
        }
        return loaded
    }

    /// One frame's body; `nil` when the stream ends before a frame starts.
    private func frame(from fd: Descriptor, what: String) throws(SplitError) -> [UInt8]? {
        let header = try read(fd, 4, what: what)
        if header.isEmpty { return nil }
        guard let length = SSHAgentRequest.length(header: header) else {
            throw SplitError(.format, "refused: \(what) is not an agent message of 1 to \(SSHAgentRequest.maxLength) bytes")
        }
        let body = try read(fd, length, what: what)
        guard body.count == length else { throw SplitError(.format, "refused: \(what) ends inside a message") }
        return body
    }

    private func read(_ fd: Descriptor, _ count: Int, what: String) throws(SplitError) -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try context.system.read(fd, exactly: count) } catch { throw SplitError(.system, "\(what): \(error)") }
        if count == 4, !bytes.isEmpty, bytes.count < 4 { throw SplitError(.format, "refused: \(what) ends inside a length") }
        return bytes
    }

    private func send(_ bytes: [UInt8], to fd: Descriptor) throws(SplitError) {
        do { try context.system.write(fd, bytes) } catch { throw SplitError(.system, "write: \(error)") }
    }

    static func framed(_ body: [UInt8]) -> [UInt8] {
        let count = UInt32(body.count)
        return [UInt8(count >> 24), UInt8(count >> 16 & 0xff), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)] + body
    }
}
