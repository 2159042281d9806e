import Foundation
import Testing

@testable import Provisioning

/// Every text of every component, laid out for every combination of the
/// options that change texts: no placeholder is left, no text is missing,
/// every shell script is valid `sh`, and every text is used by some layout.
@Suite struct TemplateTextTests {
    static let networks = [
        NetworkConnection(name: "home", content: "[wifi-security]\npsk=x\n", hasSecret: true),
        NetworkConnection(name: "cable", content: "[connection]\nid=cable\n", hasSecret: false),
    ]

    /// The manifests of every option combination, all components on.
    static var manifests: [Manifest] {
        var all: [Manifest] = []
        for disposable in [true, false] {
            for firewall in Manifest.Firewall.allCases {
                for input in [true, false] {
                    var manifest = Manifest(components: Catalog.liteqube.components)
                    manifest.disposableNetVM = disposable
                    manifest.firewall = firewall
                    manifest.usbInputDevices = input
                    // Onion updates, stable MACs and the wired qube change texts too: each on in some layouts, off in the others.
                    manifest.onionUpdates = input
                    manifest.stableMAC = firewall == .linux
                    manifest.wiredOnly = firewall == .mirage && !input
                    // dom0's password prompt comes with password clients.
                    manifest.passwordClients = disposable ? ["work"] : []
                    // Intel's Wi-Fi firmware brings the suspend blacklist.
                    manifest.firmware = disposable ? ["firmware-iwlwifi"] : nil
                    // Both tunnels, the OpenVPN one with a user.
                    manifest.vpnKind = input ? .openvpn : .wireguard
                    manifest.vpnProfile = "office"
                    manifest.vpnUser = input ? "alice" : nil
                    manifest.sshClients = ["work"]
                    all.append(manifest)
                }
            }
        }
        return all
    }

    /// Path and text of every file a manifest's layout and dom0 services hold.
    static func texts(_ manifest: Manifest) throws -> [(path: String, text: String)] {
        let package = TemplatePackage(version: "1.0", source: "/lq-inqube_1.0_amd64.deb", sha256: "")
        let steps = try Overlay.templateSteps(manifest, package: package, networks: networks)
        let files = steps.compactMap { step -> (String, String)? in
            if case .entry(let entry) = step, case .file(let text) = entry.kind { (entry.path, text) } else { nil }
        }
        // The split SSH client's installer, which `lq addkey ssh` runs in a client qube.
        let clients = manifest.includes(.splitSSH) ? [("client:split-ssh/install", try SplitSSH.clientInstaller(manifest))] : []
        return files + (try Dom0Service.all(manifest).map { ("dom0:" + $0.name, $0.content) }) + clients
    }

    static func shellAccepts(_ text: String) throws -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-n"]
        let input = Pipe()
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    @Test func everyTextIsCompleteAndEveryScriptIsValidShell() throws {
        var checked = 0
        for manifest in Self.manifests {
            for (path, text) in try Self.texts(manifest) {
                #expect(!text.contains("{{") && !path.contains("{{"), "\(path) keeps a placeholder")
                guard text.hasPrefix("#!/bin/sh\n") else { continue }
                #expect(try Self.shellAccepts(text), "\(path) is not valid sh")
                checked += 1
            }
        }
        #expect(checked > 8 * 30)
    }

    @Test func everyResourceTextIsUsed() throws {
        let rendered = try Self.manifests.flatMap { try Self.texts($0).map(\.text) }.joined(separator: "\n")
        for (key, text) in TemplateTexts.files {
            let plain = text.split(separator: "\n").filter { !$0.contains("{{") && !$0.isEmpty }
            #expect(plain.allSatisfy { rendered.contains($0) }, "\(key) is used by no component")
        }
    }

    /// core-net unloads Intel's Wi-Fi modules before suspend only when it has an Intel chip's firmware.
    @Test func theSuspendBlacklistFollowsTheWifiChip() throws {
        let path = "/etc/protect/template.core-net/config/suspend-module-blacklist"
        for (firmware, wired, expected) in [(["firmware-iwlwifi"], false, "iwlmvm\niwlwifi\n"), (["firmware-realtek"], false, ""), ([], false, ""), (["firmware-iwlwifi"], true, "")] {
            var manifest = Manifest(components: [.base, .network])
            manifest.firmware = firmware
            manifest.wiredOnly = wired
            #expect(try Self.texts(manifest).first { $0.path == path }?.text == expected, "\(firmware) wired \(wired)")
        }
    }

    /// debian-core's `/etc/hosts` names every qube of the installed components (renamed ones by their
    /// new names) after the usual localhost lines, so sudo and X find each qube's own name.
    @Test func hostsNameEveryQube() throws {
        var manifest = try Manifest.parse("components: [base, network]\nnames: {net: my-net}\n")
        manifest.disposableNetVM = false
        let hosts = try #require(try Self.texts(manifest).first { $0.path == "/etc/hosts" }).text
        let lines = hosts.split(separator: "\n").map(String.init)
        #expect(lines.first == "127.0.0.1\tlocalhost")
        let named = lines.filter { $0.hasPrefix("127.0.1.1\t") }.map { String($0.dropFirst(10)) }
        #expect(named.contains("my-net") && !named.contains("core-net") && !named.contains("core-usb"))
        #expect(Set(["debian-core", "core-dvm", "core-xorg", "core-keys", "core-tor", "core-update", "fw-net", "fw-tor"]).isSubset(of: named))
    }
}
