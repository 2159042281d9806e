import Dispatch
import Foundation
import Glibc
import SplitServices
import SystemLayer
import Testing

/// The keys qube's side of split SSH with the real OpenSSH agent (docs/split-services.md, "Split SSH"):
/// the client end of a socket pair stands for the client qube's connection through qrexec.
@Suite(.enabled(if: haveOpenSSH, "needs ssh-agent, ssh-add and ssh-keygen (Debian's openssh-client)"), .timeLimit(.minutes(1)))
struct SplitSSHTests {
    let folder: Folder
    let recorder = Recorder()
    let agent: Agent
    let socket: String

    init() throws {
        folder = try Folder()
        for qube in ["work", "other"] {
            try Self.program("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", qube, "-f", "\(folder.path)/\(qube)"])
            try folder.file("store/\(qube)/id", try [UInt8](Data(contentsOf: URL(fileURLWithPath: "\(folder.path)/\(qube)"))))
        }
        socket = folder.path + "/agent"
        agent = try Agent(socket: socket)
        // A refused connection closes its end early: writing to it must fail, not kill the test.
        signal(SIGPIPE, SIG_IGN)
    }

    static func program(_ path: String, _ arguments: [String]) throws {
        let process = try Process.run(URL(fileURLWithPath: path), arguments: arguments)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(path) \(arguments)")
    }

    /// The public key blob of `qube`'s key, from its `.pub` line.
    func blob(_ qube: String) throws -> [UInt8] {
        let line = try String(contentsOfFile: "\(folder.path)/\(qube).pub", encoding: .utf8).split(separator: " ")
        return [UInt8](try #require(Data(base64Encoded: String(line[1]))))
    }

    /// Runs a connection of `caller`: the requests written, the client's end closed, then every answer frame.
    func connection(_ caller: String, _ requests: [[UInt8]]) throws -> (answers: [[UInt8]], result: Result<SplitSSHServer.Summary, SplitError>) {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        let server = SplitSSHServer(store: folder.path + "/store", agentSocket: socket, context: ServiceContext(notifier: recorder))
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let serverEnd = pair[1]
        DispatchQueue.global().async {
            box.result = Result { () throws(SplitError) in try server.serve(caller: caller, input: serverEnd, output: serverEnd) }
            close(serverEnd)
            done.signal()
        }
        let system = HostSystem()
        for request in requests { try? system.write(pair[0], SSHAgentRequestTests.uint32(request.count) + request) }
        shutdown(pair[0], Int32(SHUT_WR))
        var answers: [[UInt8]] = []
        // A server that refuses closes its end with requests unread: the reset ends the answers too.
        while let header = try? system.read(pair[0], exactly: 4), header.count == 4,
              let answer = try? system.read(pair[0], exactly: header.reduce(0) { $0 << 8 | Int($1) }) {
            answers.append(answer)
        }
        close(pair[0])
        done.wait()
        return (answers, try #require(box.result))
    }

    @Test func theCallerSeesAndSignsWithItsOwnKeyOnlyAndCannotChangeTheAgent() throws {
        let key = try blob("work")
        let sign: [UInt8] = [13] + SSHAgentRequestTests.string(key) + SSHAgentRequestTests.string(Array("challenge".utf8)) + SSHAgentRequestTests.uint32(0)
        let otherSign: [UInt8] = [13] + SSHAgentRequestTests.string(try blob("other")) + SSHAgentRequestTests.string([1]) + SSHAgentRequestTests.uint32(0)
        let removeAll: [UInt8] = [19]
        let lock: [UInt8] = [22] + SSHAgentRequestTests.string(Array("pw".utf8))
        let (answers, result) = try connection("work", [[11], sign, removeAll, lock, otherSign, [11]])
        #expect(answers.count == 6)
        let identities = [12] + SSHAgentRequestTests.uint32(1) + SSHAgentRequestTests.string(key) + SSHAgentRequestTests.string(Array("work".utf8))
        #expect(answers.first == identities)
        #expect(answers.count > 1 && answers[1].first == 14, "a signature")
        #expect(answers.dropFirst(2).prefix(3).allSatisfy { $0 == [5] }, "remove, lock and the other qube's key refused")
        #expect(answers.last == identities, "the key is still there")
        #expect(try result.get() == SplitSSHServer.Summary(keys: ["id"], passed: 4, refused: 2))
        #expect(recorder.messages == ["work signs with its ssh key", "work signs with its ssh key"])
    }

    @Test func refusesWithoutKeysAgentOrFramingAndKeepsNoAgentAnswer() throws {
        let (none, noKeys) = try connection("nobody", [[11]])
        #expect(none.isEmpty)
        #expect(throws: SplitError.self) { try noKeys.get() }
        let (tooLong, framing) = try connection("work", [[UInt8](repeating: 11, count: SSHAgentRequest.maxLength + 1)])
        #expect(tooLong.isEmpty)
        #expect { try framing.get() } throws: { "\($0)".contains("is not an agent message of 1 to 262144 bytes") }
        let server = SplitSSHServer(store: folder.path + "/store", agentSocket: nil)
        #expect { try server.serve(caller: "work", input: -1, output: -1) } throws: { "\($0)".contains("SSH_AUTH_SOCK is unset") }
        #expect { try server.serve(caller: "../work", input: -1, output: -1) } throws: { ($0 as? SplitError)?.code == .caller }
    }
}

let haveOpenSSH = ["/usr/bin/ssh-agent", "/usr/bin/ssh-keygen", "/usr/bin/ssh-add"].allSatisfy(FileManager.default.isExecutableFile(atPath:))

/// `ssh-agent -D -a SOCKET`, stopped when the test ends.
final class Agent {
    let process = Process()

    init(socket: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-agent")
        process.arguments = ["-D", "-a", socket]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where access(socket, F_OK) != 0 { usleep(10_000) }
    }

    /// SIGKILL: a child of the test runner inherits its threads' blocked signals, SIGTERM among them.
    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The server thread's outcome.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Result<SplitSSHServer.Summary, SplitError>?
    var result: Result<SplitSSHServer.Summary, SplitError>? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
