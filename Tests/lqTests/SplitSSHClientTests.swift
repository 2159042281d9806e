import Foundation
import Glibc
import TestSupport
import Testing

@testable import Provisioning

/// Split SSH end to end (docs/split-services.md, "Split SSH"): the client side `lq addkey ssh` installs,
/// judged by systemd-analyze, answered through a stand-in of systemd's socket and of qrexec by the keys
/// qube's rendered `liteqube.SplitSSH` service, which runs the built `lq-splitssh` under the real
/// ssh-agent; the real ssh-add and ssh-keygen are the client.
@Suite(.enabled(if: haveOpenSSHClient, "needs ssh-agent, ssh-add and ssh-keygen (Debian's openssh-client)"), .timeLimit(.minutes(2)))
struct SplitSSHClientTests {
    let folder: URL
    var path: String { folder.path }

    init() throws {
        folder = try Scratch.folder("lq-split-ssh")
        signal(SIGPIPE, SIG_IGN)
    }

    func program(_ path: String, _ arguments: [String], environment: [String: String] = [:], input: String = "") throws -> ProgramResult {
        try ProgramResult.run(URL(fileURLWithPath: path), arguments, environment: ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }, input: input)
    }

    func write(_ relative: String, _ text: String, mode: Int = 0o644) throws {
        let file = folder.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
    }

    /// The keys qube: `work`'s key in the store, `lq-splitssh` linked to the built program, and its qrexec
    /// service as the template gets it (pointed at this store, without dom0 notices).
    func keysQube(_ manifest: Manifest) throws -> String {
        #expect(try program("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "work@laptop", "-f", "\(path)/work"]).status == 0)
        try write("store/work/id", try String(contentsOfFile: "\(path)/work", encoding: .utf8), mode: 0o600)
        try FileManager.default.createDirectory(atPath: "\(path)/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(path)/bin/lq-splitssh", withDestinationPath: Repository.product("lq-inqube").path)
        let service = TemplateTexts.render(
            try TemplateTexts.text("split-ssh/etc/qubes-rpc/liteqube.SplitSSH"), manifest: manifest, values: ["bin": "\(path)/bin"])
        #expect(service.hasSuffix(" serve\n"))
        try write("keys/liteqube.SplitSSH", service.replacingOccurrences(of: " serve\n", with: " serve --store \(path)/store --no-notify\n"), mode: 0o755)
        // qrexec: the policy allowed work's call to core-keys; the service runs with the caller's name.
        let qrexec = """
            #!/bin/sh
            [ "$1" = core-keys ] && [ "$2" = liteqube.SplitSSH ] || exit 126
            QREXEC_REMOTE_DOMAIN=work exec \(path)/keys/liteqube.SplitSSH

            """
        try write("qrexec-client-vm", qrexec, mode: 0o755)
        return "\(path)/qrexec-client-vm"
    }

    @Test func theInstalledSocketReachesTheCallersKeyInTheKeysQubeAndOnlyListsAndSigns() throws {
        let manifest = Manifest(components: [.base, .splitSSH])
        let qrexec = try keysQube(manifest)
        // The client: the installer as lq addkey ssh sends it, with a user session that is not running.
        try write("stub/systemctl", "#!/bin/sh\nexit 1\n", mode: 0o755)
        let installed = try program(
            "/bin/sh", ["-s"], environment: ["HOME": "\(path)/home", "PATH": "\(path)/stub:/usr/bin:/bin"], input: try SplitSSH.clientInstaller(manifest))
        #expect(installed.status == 0 && installed.stderr.contains("no user session now"), "\(installed.stderr)")
        let units = "\(path)/home/.config/systemd/user"
        #expect(try String(contentsOfFile: "\(path)/home/.bashrc", encoding: .utf8).contains("export SSH_AUTH_SOCK=\"$XDG_RUNTIME_DIR/liteqube-ssh-agent\""))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "\(units)/sockets.target.wants/liteqube-ssh-agent.socket") == "../liteqube-ssh-agent.socket")
        let again = try program("/bin/sh", ["-s"], environment: ["HOME": "\(path)/home", "PATH": "\(path)/stub:/usr/bin:/bin"], input: try SplitSSH.clientInstaller(manifest))
        #expect(again.status == 0)
        #expect(try String(contentsOfFile: "\(path)/home/.bashrc", encoding: .utf8).components(separatedBy: "SSH_AUTH_SOCK=").count == 2, "one line, however often it runs")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") {
            try FileManager.default.createDirectory(atPath: "\(path)/run", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let verify = try program(
                "/usr/bin/systemd-analyze", ["--user", "verify", "--man=no", "\(units)/liteqube-ssh-agent.socket"], environment: ["XDG_RUNTIME_DIR": "\(path)/run"])
            #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stderr)")
        }

        // systemd: the socket (ListenStream=%t/…) accepts, each connection runs the unit's ExecStart with it as stdin and stdout.
        let unit = try String(contentsOfFile: "\(units)/liteqube-ssh-agent@.service", encoding: .utf8)
        let execStart = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") })
        let command = execStart.dropFirst("ExecStart=".count).split(separator: " ").map(String.init)
        #expect(command == ["/usr/bin/qrexec-client-vm", "core-keys", "liteqube.SplitSSH"])
        let socket = try AcceptingSocket(path: "\(path)/run/liteqube-ssh-agent") { connection in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: qrexec)
            process.arguments = Array(command.dropFirst())
            process.environment = ["PATH": "/usr/bin:/bin"]
            process.standardInput = FileHandle(fileDescriptor: connection, closeOnDealloc: false)
            process.standardOutput = FileHandle(fileDescriptor: connection, closeOnDealloc: false)
            try? process.run()
            close(connection)
        }
        defer { socket.stop() }

        let agent = ["SSH_AUTH_SOCK": socket.path]
        let publicKey = try String(contentsOfFile: "\(path)/work.pub", encoding: .utf8)
        let listed = try program("/usr/bin/ssh-add", ["-L"], environment: agent)
        #expect(listed.status == 0 && listed.stdout == publicKey, "\(listed.stderr)")
        try write("message", "deploy v2\n")
        let signed = try program("/usr/bin/ssh-keygen", ["-Y", "sign", "-n", "file", "-f", "\(path)/work.pub", "\(path)/message"], environment: agent)
        #expect(signed.status == 0, "\(signed.stderr)")
        let checked = try program(
            "/usr/bin/ssh-keygen", ["-Y", "check-novalidate", "-n", "file", "-f", "\(path)/work.pub", "-s", "\(path)/message.sig"], input: "deploy v2\n")
        #expect(checked.status == 0 && checked.stdout.contains("Good \"file\" signature"), "\(checked.stdout)\(checked.stderr)")
        #expect(try program("/usr/bin/ssh-add", ["-D"], environment: agent).status != 0, "removing keys is refused")
        #expect(try program("/usr/bin/ssh-add", ["-x"], environment: agent, input: "pw\npw\n").status != 0, "locking is refused")
        #expect(try program("/usr/bin/ssh-add", ["-L"], environment: agent).stdout == publicKey, "the key is still there")
    }
}

let haveOpenSSHClient = ["/usr/bin/ssh-agent", "/usr/bin/ssh-keygen", "/usr/bin/ssh-add"].allSatisfy(FileManager.default.isExecutableFile(atPath:))

/// A listening Unix socket whose connections go to `handle` on a thread of their own (systemd's `Accept=yes`).
final class AcceptingSocket: @unchecked Sendable {
    let path: String
    private let descriptor: Int32
    private let thread: Thread

    init(path: String, handle: @escaping @Sendable (Int32) -> Void) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0 && listen(fd, 8) == 0, "bind \(path): errno \(errno)")
        descriptor = fd
        thread = Thread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 { return }
                handle(connection)
            }
        }
        thread.start()
    }

    func stop() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }
}
