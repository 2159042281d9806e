import LQCommon
import Provisioning
import Testing

@Suite struct ManifestTests {
    @Test func componentsAloneAreComplete() throws {
        let manifest = try Manifest.parse("components: [base, network, usb]\n")
        #expect(manifest.components == [.base, .network, .usb])
        #expect(manifest.profile == .default)
        #expect(manifest.effectiveFirewall == .linux)
        #expect(manifest.name(.net) == "core-net")
        #expect(manifest.label(.template) == "black")
    }

    @Test func settingsAreRead() throws {
        let manifest = try Manifest.parse("""
            components: [base, network]
            profile: low-memory
            base_template: debian-12-minimal
            names:
              net: my-net
            memory:
              net: 256
            disposable_netvm: false
            usb_input_devices: false
            networks: saved-networks
            """)
        #expect(manifest.profile == .lowMemory)
        #expect(manifest.effectiveFirewall == .mirage)
        #expect(manifest.name(.net) == "my-net")
        #expect(manifest.memory[.net] == 256)
        #expect(!manifest.disposableNetVM)
        #expect(manifest.baseTemplate == "debian-12-minimal")
        #expect(manifest.networks == "saved-networks")
        #expect(manifest.setTime && manifest.timeTorServers.count == 4 && manifest.timeClearnetServers.first == "https://www.debian.org")
    }

    @Test func clockSettingsAreRead() throws {
        let onion = String(repeating: "a2", count: 28) + ".onion"
        let manifest = try Manifest.parse("""
            components: [base, network]
            set_time: false
            time_tor_servers: [\(onion), "http://\(onion)"]
            time_clearnet_servers: []
            """)
        #expect(!manifest.setTime)
        #expect(manifest.timeTorServers == [onion, "http://" + onion])
        #expect(manifest.timeClearnetServers.isEmpty)
    }

    @Test(arguments: [
        ("components: [base]\nfrobnicate: 1\n", 2, "unknown setting 'frobnicate'"),
        ("components: [base, wifi]\n", 1, "unknown component 'wifi'"),
        ("components: [base]\nprofile: tiny\n", 2, "profile must be one of"),
        ("components: [base]\nmemory:\n  net: -5\n", 3, "memory.net must be a positive"),
        ("components: [base]\nnames:\n  net: 0bad\n", 3, "not a valid qube name"),
        ("components: [base]\nnames:\n  nosuch: x\n", 3, "unknown names entry"),
        ("components: [base]\ndisposable_netvm: maybe\n", 2, "must be true or false"),
        ("components: [base, network]\nset_time: sometimes\n", 2, "set_time must be true or false"),
        ("components: [base, network]\ntime_tor_servers: []\n", 2, "must hold 1 to 15 entries, not 0"),
        ("components: [base, network]\ntime_tor_servers:\n  - www.debian.org\n", 3, "'www.debian.org' is not a v3 onion address"),
        ("components: [base, network]\ntime_clearnet_servers:\n  - a.org\n  - x;reboot\n", 4, "'x;reboot' is not a host name"),
        ("components: [base, network]\ntime_clearnet_servers: [\"\(String(repeating: "a", count: 56)).onion\"]\n", 2, "needs Tor"),
        ("components: [base, network]\ntime_clearnet_servers: www.debian.org\n", 2, "time_clearnet_servers must be a list"),
    ])
    func badInputNamesTheLine(_ text: String, _ line: Int, _ message: String) {
        expectRefusal(of: text, line: line, message: message) { try Manifest.parse($0) }
    }

    @Test func errorsNameTheManifestFileAndLine() throws {
        let error = try #require(throws: Manifest.Error.self) {
            try Manifest.parse("components: [base]\nfrobnicate: 1\n", file: "site/liteqube.yaml")
        }
        #expect(error.location == SourceLocation(file: "site/liteqube.yaml", line: 2))
        #expect(error.description == "site/liteqube.yaml: line 2: unknown setting 'frobnicate'")
    }

    @Test func componentsAndBaseAreRequired() {
        #expect(throws: Manifest.Error.self) { try Manifest.parse("profile: default\n") }
        #expect(throws: Manifest.Error.self) { try Manifest.parse("components: [network]\n") }
        #expect(throws: Manifest.Error.self) { try Manifest.parse("- a\n- b\n") }
    }
}
