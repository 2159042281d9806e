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
    }

    @Test(arguments: [
        ("components: [base]\nfrobnicate: 1\n", 2, "unknown setting 'frobnicate'"),
        ("components: [base, wifi]\n", 1, "unknown component 'wifi'"),
        ("components: [base]\nprofile: tiny\n", 2, "profile must be one of"),
        ("components: [base]\nmemory:\n  net: -5\n", 3, "memory.net must be a positive"),
        ("components: [base]\nnames:\n  net: 0bad\n", 3, "not a valid qube name"),
        ("components: [base]\nnames:\n  nosuch: x\n", 3, "unknown names entry"),
        ("components: [base]\ndisposable_netvm: maybe\n", 2, "must be true or false"),
    ])
    func badInputNamesTheLine(_ text: String, _ line: Int, _ message: String) {
        do {
            _ = try Manifest.parse(text)
            Issue.record("accepted: \(text)")
        } catch let error as Manifest.Error {
            #expect(error.location?.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        } catch {
            Issue.record("\(error)")
        }
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
