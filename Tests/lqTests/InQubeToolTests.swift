import Foundation
import TestSupport
import Testing

/// Runs the built in-qube tools (`lq-protect`, `lq-splitfile`, `lq-splitpassword`, by name, or a path) as
/// qrexec or systemd would: environment, arguments, stdin.
enum InQubeTools {
    static func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:], input: String = "") throws -> LQ.Result {
        let program = tool.hasPrefix("/") ? URL(fileURLWithPath: tool) : Repository.product(tool)
        return try ProgramResult.run(program, arguments, environment: environment, input: input)
    }

    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-split-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("store/core-vpn"), withIntermediateDirectories: true)
        return folder
    }
}

@Suite struct SplitToolTests {
    @Test func splitFileServesByServiceArgumentArgvOrStdinAndRefusesTraversal() throws {
        let folder = try InQubeTools.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("ovpn".utf8).write(to: folder.appendingPathComponent("store/core-vpn/server.zip"))
        let store = folder.appendingPathComponent("store").path
        let caller = ["QREXEC_REMOTE_DOMAIN": "core-vpn"]
        for (environment, arguments, input) in [
            (caller.merging(["QREXEC_SERVICE_ARGUMENT": "server.zip"]) { $1 }, [String](), ""),
            (caller, ["server.zip"], ""), (caller, [], "server.zip\n"),
        ] {
            let result = try InQubeTools.run("lq-splitfile", ["serve", "--store", store, "--no-notify"] + arguments, environment: environment, input: input)
            #expect(result.status == 0 && result.stdout == "ovpn" && result.stderr.isEmpty)
        }
        let refused = try InQubeTools.run(
            "lq-splitfile", ["serve", "--store", store, "--no-notify"], environment: caller.merging(["QREXEC_SERVICE_ARGUMENT": "..%2Fcore-net%2Fkey"]) { $1 })
        #expect(refused.status == 1 && refused.stdout.isEmpty)
        #expect(refused.stderr == "lq-splitfile: refused: file name '..%2Fcore-net%2Fkey' has the byte %; allowed: A-Z a-z 0-9 _ . + -\n")
        let anonymous = try InQubeTools.run("lq-splitfile", ["serve", "--store", store, "--no-notify", "server.zip"])
        #expect(anonymous.status == 1 && anonymous.stdout.isEmpty)
        #expect(try InQubeTools.run("lq-splitfile", ["serve", "--max-size", "many"]).status == 2)
        #expect(try InQubeTools.run("lq-splitfile", ["--bogus"]).status == 2)
    }

    @Test func splitFileClientWritesANewPrivateFile() throws {
        let folder = try InQubeTools.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let client = folder.appendingPathComponent("qrexec-client-vm")
        try Data("#!/bin/sh\nprintf '%s %s' \"$1\" \"$2\"\n".utf8).write(to: client)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: client.path)
        let output = folder.appendingPathComponent("got").path
        let result = try InQubeTools.run("lq-splitfile", ["get", "server.zip", "--client", client.path, "--output", output])
        #expect(result.status == 0)
        #expect(try String(contentsOfFile: output, encoding: .utf8) == "core-keys liteqube.SplitFile+server.zip")
        #expect((try FileManager.default.attributesOfItem(atPath: output)[.posixPermissions] as? Int) == 0o600)
        let again = try InQubeTools.run("lq-splitfile", ["get", "server.zip", "--client", client.path, "--output", output])
        #expect(again.status == 1 && again.stderr.contains("\(output): openat: File exists"))
        #expect(try InQubeTools.run("lq-splitfile", ["get", "../x", "--client", client.path]).status == 1)
    }

    @Test func splitPasswordClientAsksDom0WhenTheKeysQubeGivesNone() throws {
        let folder = try InQubeTools.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let client = folder.appendingPathComponent("qrexec-client-vm")
        let calls = folder.appendingPathComponent("calls").path
        try Data("#!/bin/sh\necho \"$*\" >> \(calls)\n[ \"$1\" = dom0 ] || exit 1\nprintf typed\n".utf8).write(to: client)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: client.path)
        let asked = try InQubeTools.run("lq-splitpassword", ["get", "vpn", "--client", client.path])
        #expect(asked.status == 0 && asked.stdout == "typed")
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "core-keys liteqube.SplitPassword+vpn\ndom0 liteqube.SplitPassword+vpn\n")
        try FileManager.default.removeItem(atPath: calls)
        let quiet = try InQubeTools.run("lq-splitpassword", ["get", "vpn", "--no-ask-dom0", "--client", client.path])
        #expect(quiet.status == 1 && quiet.stdout.isEmpty && quiet.stderr.contains("core-keys refused liteqube.SplitPassword+vpn"))
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "core-keys liteqube.SplitPassword+vpn\n")
    }

    @Test func splitPasswordSavePinAndServe() throws {
        let folder = try InQubeTools.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = folder.appendingPathComponent("store").path
        let rules = folder.appendingPathComponent("rules").path
        try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
        let saved = try InQubeTools.run("lq-splitpassword", ["save", "--store", store, "--owner", "0:0"], input: "core-vpn\nvpn\nhunter 2\n")
        #expect(saved.status == 0 && saved.stdout.split(separator: "\n").map(\.count) == [64, 128])
        let pinned = try InQubeTools.run("lq-splitpassword", ["pin", "--rules", rules, "--owner", "0:0"], input: "core-vpn\n" + saved.stdout)
        #expect(pinned.status == 0 && pinned.stdout == "\(rules)/checksum.core-keys/home/user/password-core-vpn\n")
        let pins = rules + "/checksum.core-keys/home/user"
        let served = try InQubeTools.run(
            "lq-splitpassword", ["serve", "--store", store, "--pins", pins, "--owner", "0", "--no-notify", "vpn"],
            environment: ["QREXEC_REMOTE_DOMAIN": "core-vpn"])
        #expect(served.status == 0 && served.stdout == "hunter 2")
        let unknown = try InQubeTools.run(
            "lq-splitpassword", ["serve", "--store", store, "--pins", pins, "--owner", "0", "--no-notify", "rdp"],
            environment: ["QREXEC_REMOTE_DOMAIN": "core-vpn"])
        #expect(unknown.status == 1 && unknown.stdout.isEmpty && unknown.stderr == "lq-splitpassword: \(store)/password-core-vpn: no password for token rdp\n")
        #expect(try InQubeTools.run("lq-splitpassword", ["save", "--owner", "root"]).status == 2)
    }

    /// dom0's qvm-run and qvm-shutdown, reaching the keys qube's and the template's services (the in-qube
    /// tools themselves, on folders) and logging every call.
    struct KeysQubeStandIn {
        let folder: URL
        var store: String { folder.appendingPathComponent("store").path }
        var rules: String { folder.appendingPathComponent("rules").path }
        var log: String { folder.appendingPathComponent("log").path }
        let options: [String]

        init() throws {
            folder = try InQubeTools.folder()
            let store = folder.appendingPathComponent("store").path
            let rules = folder.appendingPathComponent("rules").path
            let log = folder.appendingPathComponent("log").path
            try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
            let tools = Bundle.main.bundleURL
            let qvmRun = folder.appendingPathComponent("qvm-run").path
            try """
                #!/bin/sh
                echo "qvm-run $*" >> \(log)
                for last; do :; done
                case "$last" in
                    liteqube.SplitPasswordSave) exec \(tools.appendingPathComponent("lq-splitpassword").path) save --store \(store) --owner 0:0 ;;
                    liteqube.SplitPasswordChecksum) exec \(tools.appendingPathComponent("lq-splitpassword").path) pin --rules \(rules) --owner 0:0 ;;
                    liteqube.SplitFileSave) exec \(tools.appendingPathComponent("lq-splitfile").path) save --store \(store) --owner 0:0 ;;
                    liteqube.SplitFileChecksum) exec \(tools.appendingPathComponent("lq-splitfile").path) pin --rules \(rules) --owner 0:0 ;;
                esac
                exit 9

                """.write(toFile: qvmRun, atomically: false, encoding: .utf8)
            let qvmShutdown = folder.appendingPathComponent("qvm-shutdown").path
            try "#!/bin/sh\necho \"qvm-shutdown $*\" >> \(log)\n".write(toFile: qvmShutdown, atomically: false, encoding: .utf8)
            chmod(qvmRun, 0o755)
            chmod(qvmShutdown, 0o755)
            options = ["--qvm-run", qvmRun, "--qvm-shutdown", qvmShutdown]
        }

        func calls() throws -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        static func expectedCalls(save: String, pin: String) -> String {
            """
            qvm-run --pass-io --no-gui --user root --service core-keys \(save)
            qvm-run --pass-io --no-gui --user root --service debian-core \(pin)
            qvm-shutdown --wait debian-core
            qvm-shutdown --wait core-keys

            """
        }
    }

    @Test func addkeyPasswordReachesTheKeysQubeOnStdinAndIsServedAgainstItsPin() throws {
        let keys = try KeysQubeStandIn()
        defer { try? FileManager.default.removeItem(at: keys.folder) }
        let saved = try InQubeTools.run(LQ.binary.path, ["addkey", "password", "core-vpn", "vpn"] + keys.options, input: "hunter 2\n")
        #expect(saved.status == 0 && saved.stdout.hasPrefix("saved in core-keys, sha256 "), "\(saved.stderr)")
        let calls = try keys.calls()
        #expect(calls == KeysQubeStandIn.expectedCalls(save: "liteqube.SplitPasswordSave", pin: "liteqube.SplitPasswordChecksum"))
        let served = try InQubeTools.run(
            "lq-splitpassword", ["serve", "--store", keys.store, "--pins", keys.rules + "/checksum.core-keys/home/user", "--owner", "0", "--no-notify", "vpn"],
            environment: ["QREXEC_REMOTE_DOMAIN": "core-vpn"])
        #expect(served.status == 0 && served.stdout == "hunter 2")

        for (qube, token, input) in [("core-vpn", "../vpn", "x\n"), ("core vpn", "vpn", "x\n"), ("core-vpn", "vpn", "\n")] {
            let refused = try InQubeTools.run(LQ.binary.path, ["addkey", "password", qube, token] + keys.options, input: input)
            #expect(refused.status == 1 && refused.stderr.hasPrefix("\(qube): "), "\(refused.stderr)")
        }
        #expect(try keys.calls() == calls, "nothing reached the qubes")
    }

    @Test func addkeyFileIsStoredPinnedAndServed() throws {
        let keys = try KeysQubeStandIn()
        defer { try? FileManager.default.removeItem(at: keys.folder) }
        let content = "client\nremote vpn.example 1194\n<key>\nsecret\n</key>\n"
        let saved = try InQubeTools.run(LQ.binary.path, ["addkey", "file", "core-vpn", "server.ovpn"] + keys.options, input: content)
        #expect(saved.status == 0 && saved.stdout.hasPrefix("saved in core-keys, sha256 "), "\(saved.stderr)")
        #expect(try keys.calls() == KeysQubeStandIn.expectedCalls(save: "liteqube.SplitFileSave", pin: "liteqube.SplitFileChecksum"))
        #expect(FileManager.default.fileExists(atPath: keys.rules + "/checksum.core-keys/home/user/core-vpn/server.ovpn"))
        let served = try InQubeTools.run("lq-splitfile", ["serve", "--store", keys.store, "--no-notify", "server.ovpn"], environment: ["QREXEC_REMOTE_DOMAIN": "core-vpn"])
        #expect(served.status == 0 && served.stdout == content)
        let refused = try InQubeTools.run(LQ.binary.path, ["addkey", "file", "core-vpn", "../server.ovpn"] + keys.options, input: content)
        #expect(refused.status == 1 && refused.stderr.hasPrefix("core-vpn: file name '../server.ovpn'"), "\(refused.stderr)")
    }
}
