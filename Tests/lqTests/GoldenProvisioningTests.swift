import Foundation
import Glibc
import Provisioning
import Testing

/// `lq plan --json` and everything `lq apply --in-qube folder:ROOT` writes,
/// byte for byte, for the bundled example manifest and for one that changes
/// every setting. The recorded outputs are in `Fixtures/golden`; a change to
/// what lq provisions shows up here as a diff. Record them again with
/// `LQ_RECORD_GOLDEN=1 swift test --filter GoldenProvisioningTests`.
@Suite struct GoldenProvisioningTests {
    static let folder = LQ.repository.appendingPathComponent("Tests/lqTests/Fixtures/golden")

    /// Every setting away from its default (the mirage firewall needs a dom0
    /// kernel, so it is left to the library's tests).
    static let everySetting = """
        components: [base, network, usb, vpn, split-ssh]
        base_template: debian-12-minimal
        profile: low-memory
        firewall: linux
        disposable_netvm: false
        usb_input_devices: false
        no_strict_reset: false
        networks: saved
        names: {core: lite-core, dvm: lite-dvm, xorg: lite-xorg, keys: lite-keys, net: lite-net, tor: lite-tor, update: lite-update, usb: lite-usb, fw-net: lite-fw, fw-tor: lite-fwtor, vpn: lite-vpn}
        labels: {template: purple, workers: orange}
        memory: {core: 900, dvm: 400, xorg: 300, keys: 150, net: 250, tor: 200, update: 2000, usb: 220, fw-net: 100, fw-tor: 90, vpn: 190}
        packages: [vim-tiny]
        firmware: [firmware-realtek]
        idle_time: 600
        sys_names: {tor: my-whonix}
        settings: {net: {quarantine: false, debug: true}}
        files: {net: {folder: custom/net, permissions: custom/net.permissions}}
        password_clients: [work, vault]
        vpn_kind: wireguard
        vpn_profile: office-wg
        vpn_dns: 9.9.9.9
        ssh_clients: [work, vault]
        ssh_ask: false

        """

    /// The `files.net` tree of `everySetting`, and its permissions list.
    static let customFiles = [
        "custom/net/config/extra.sh": "#!/bin/sh\necho extra\n",
        "custom/net.permissions": "drwxr-xr-x root root ./config\n-rwxr-x--- user user ./config/extra.sh\n",
    ]

    static let networks = [
        "home.nmconnection": "[connection]\nid=home\ntype=wifi\n\n[wifi]\nssid=home\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=secret words\n",
        "cable.nmconnection": "[connection]\nid=cable\ntype=ethernet\n",
    ]

    /// Every setting the example manifest shows in a comment is taken as written.
    @Test func theExampleManifestsCommentedSettingsAreValid() throws {
        let example = try String(contentsOf: LQ.repository.appendingPathComponent("examples/liteqube.yaml"), encoding: .utf8)
        let settings = example.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("# "), let colon = line.firstIndex(of: ":"),
                line[line.index(line.startIndex, offsetBy: 2)..<colon].allSatisfy({ $0.isLowercase || $0 == "_" })
            else { return nil }
            return String(line.dropFirst(2)).components(separatedBy: "  #")[0]
        }
        #expect(settings.count > 20)
        let manifest = try Manifest.parse("components: [base, network, usb]\n" + settings.joined(separator: "\n") + "\n")
        #expect(manifest.passwordClients == ["work"] && manifest.packages == ["vim-tiny"] && manifest.idleTime == 300)
    }

    @Test(arguments: ["example", "every-setting"])
    func provisioningOutputIsUnchanged(_ name: String) throws {
        let scratch = try ProvisioningScratch()
        let manifest: String
        let keysQube = name == "example" ? "core-keys" : "lite-keys"
        if name == "example" {
            manifest = try String(contentsOf: LQ.repository.appendingPathComponent("examples/liteqube.yaml"), encoding: .utf8)
            try scratch.macKey()
        } else {
            manifest = Self.everySetting
            try scratch.folder("saved")
            for (file, text) in Self.networks { try scratch.write("saved/" + file, text, mode: 0o600) }
            try scratch.folder("custom/net/config")
            for (file, text) in Self.customFiles { try scratch.write(file, text) }
        }
        try scratch.write("liteqube.yaml", manifest)
        let common = [
            "-f", scratch.path("liteqube.yaml"), "--store", scratch.path("qubes.xml"), "--policy-dir", scratch.path("policy.d"),
            "--rpc-dir", scratch.path("qubes-rpc"), "--in-qube", "folder:\(scratch.path("root")),\(keysQube)=\(scratch.path("keys"))",
            "--binaries", scratch.path("tools"),
        ]
        let plan = try LQ.run(arguments: ["plan"] + common + ["--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        let apply = try LQ.run(arguments: ["apply"] + common)
        #expect(apply.status == 0, "\(apply.stderr)")
        let tree = try ["root", "keys", "policy.d", "qubes-rpc"].map { try scratch.snapshot($0) }.joined()

        try Self.compare(scratch.normalised(plan.stdout), "\(name).plan.json")
        try Self.compare(scratch.normalised(tree), "\(name).tree.txt")
    }

    static func compare(_ actual: String, _ file: String) throws {
        let url = folder.appendingPathComponent(file)
        if ProcessInfo.processInfo.environment["LQ_RECORD_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        let difference = zip(actual.split(separator: "\n", omittingEmptySubsequences: false), expected.split(separator: "\n", omittingEmptySubsequences: false))
            .enumerated().first { $0.element.0 != $0.element.1 }
        #expect(actual == expected, "\(file) differs at line \((difference?.offset ?? -1) + 1): \(difference.map { "got '\($0.element.0)', recorded '\($0.element.1)'" } ?? "length")")
    }
}

/// A scratch folder with the default-install store, empty dom0 policy and
/// service folders, a template root of a debian-N-minimal's users, and a
/// stand-in for the template package.
struct ProvisioningScratch {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lq-golden-\(UUID().uuidString)").path
        for folder in ["policy.d", "qubes-rpc", "tools", "keys", "root/etc/apt/apt.conf.d", "root/etc/sudoers.d", "root/etc/systemd/system", "root/usr/lib", "root/var/lib", "keys/etc", "keys/home/user"] {
            try self.folder(folder)
        }
        try FileManager.default.copyItem(atPath: LQ.fixture("valid/qubes-default.xml"), toPath: path("qubes.xml"))
        try write("policy.d/30-user.policy", "# the user's own rules\n")
        for qube in ["root", "keys"] {
            try write(qube + "/etc/passwd", "root:x:0:0::/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\ndebian-tor:x:107:113::/var/lib/tor:/bin/false\n")
            try write(qube + "/etc/group", "root:x:0:\nuser:x:1000:\ndebian-tor:x:113:\n")
        }
        try write("root/etc/fstab", "/dev/mapper/dmroot / ext4 defaults,discard,noatime 1 1\n", mode: 0o640)
        try write("tools/lq-inqube_\(try LQ.release())_amd64.deb", "!<arch>\ndebian-binary   stand-in for lq-inqube\n")
    }

    func path(_ relative: String) -> String { directory + "/" + relative }

    /// The MAC key core-keys already holds (apply would generate a random one; docs/liteqube.md, "MAC addresses").
    func macKey() throws {
        try folder("keys/home/user/core-net")
        try write("keys/home/user/core-net/secret_key", String(repeating: "0123456789abcdef", count: 32), mode: 0o600)
    }

    func folder(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path(relative), withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String, mode: Int = 0o644) throws {
        try text.write(toFile: path(relative), atomically: false, encoding: .utf8)
        chmod(path(relative), mode_t(mode))
    }

    /// Every entry below `relative`, sorted: path, type and mode, owner, then
    /// the link target or the file's text.
    func snapshot(_ relative: String) throws -> String {
        var lines: [String] = []
        let base = path(relative)
        for entry in try FileManager.default.subpathsOfDirectory(atPath: base).sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            var info = stat()
            guard lstat(base + "/" + entry, &info) == 0 else { throw POSIXError(.ENOENT) }
            let header = "\(relative)/\(entry) \(String(info.st_mode, radix: 8)) \(info.st_uid):\(info.st_gid)"
            switch info.st_mode & S_IFMT {
            case S_IFREG:
                let text = try String(contentsOfFile: base + "/" + entry, encoding: .utf8)
                lines.append(header + " file\n" + text + (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + "--- end\n")
            case S_IFLNK: lines.append(header + " -> " + (try FileManager.default.destinationOfSymbolicLink(atPath: base + "/" + entry)) + "\n")
            default: lines.append(header + "\n")
            }
        }
        return lines.joined()
    }

    /// `text` with this scratch folder's path replaced by `$SCRATCH`.
    func normalised(_ text: String) -> String { text.replacingOccurrences(of: directory, with: "$SCRATCH") }
}
