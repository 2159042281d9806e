import QubesAdmin
import QubesStore
import Testing

@testable import Provisioning

extension Role {
    static let echo = Role(rawValue: "echo")
}

/// A component that lives in the test target alone: adding it needs no
/// change to the parser, planner, memory report, policy or dom0 services.
enum Echo {
    static let greeting = Setting<String?>.text("echo_greeting")

    static let component = Component(id: "echo") { echo in
        echo.roles = [RoleSpec(.echo, name: "core-echo", presence: .onDemand, memory: 96)]
        echo.settings = [greeting.erased]
        echo.qubes = { desired in
            let core = desired.name(.core)
            desired.add(.echo, .appVM) { $0.template = core }
        }
        echo.packages = { _ in ["cowsay"] }
        echo.trees = { overlay in
            let tree = overlay.qubeTemplate(.echo, rcLocal: false)
            overlay.file(tree + "/config/rc.local", content: "#!/bin/sh\necho \(overlay.manifest[greeting] ?? "hello")\n", mode: 0o755)
        }
        echo.policy = { $0.notify([.echo]) }
        echo.dom0Services = { _ in
            [Dom0Service(name: "liteqube.Echo", urgency: "low", milliseconds: 1000, icon: "dialog-information", text: "base/dom0/text/plain")]
        }
        echo.sudoCommands = { _ in ["/usr/bin/true"] }
    }

    static let catalog = Catalog(components: Catalog.liteqube.components + [component])
}

@Suite struct ComponentTests {
    static let manifestText = "components: [base, echo]\necho_greeting: hi\nnames: {echo: my-echo}\n"

    @Test func aComponentOfItsOwnReachesEveryPart() throws {
        let manifest = try Manifest.parse(Self.manifestText, catalog: Echo.catalog)
        #expect(manifest.components == [.base, Echo.component])
        #expect(manifest[Echo.greeting] == "hi")
        #expect(manifest.name(.echo) == "my-echo")

        let desired = try DesiredState(manifest, templates: ["debian-13-minimal"], qubes: [], kernels: nil)
        let echo = try #require(desired.qubes.first { $0.role == .echo })
        #expect(echo.name == "my-echo" && echo.vmClass == .appVM && echo.template == "debian-core" && echo.memory == 96)
        #expect(MemoryBudget(desired: desired).entries.contains { $0.qube == "my-echo" && $0.memory == 96 && $0.presence == .onDemand })
        #expect(PolicyRules.rules(manifest).contains { $0.service == "liteqube.Error" && $0.source == "my-echo" && $0.target == "@adminvm" })
        #expect(desired.policy.contains("my-echo"))
        let services = try Dom0Service.all(manifest)
        #expect(services.map(\.name) == ["liteqube.Message", "liteqube.Error", "liteqube.Echo"])
        #expect(services.last?.content.contains("--urgency=low --expire-time=1000") == true)

        let steps = try Overlay.templateSteps(manifest, package: nil, networks: [])
        #expect(steps.contains(.packages(["ca-certificates", "fonts-terminus-otb", "netcat-openbsd", "openssh-client", "stterm", "x11-utils", "cowsay"])))
        let files = Dictionary(steps.compactMap { step -> (String, String)? in
            if case .entry(let entry) = step, case .file(let text) = entry.kind { (entry.path, text) } else { nil }
        }, uniquingKeysWith: { first, _ in first })
        #expect(files["/etc/protect/template.my-echo/config/rc.local"] == "#!/bin/sh\necho hi\n")
        #expect(files["/etc/sudoers.d/liteqube"]?.contains("NOPASSWD: /usr/bin/systemctl poweroff, /usr/sbin/shutdown, /usr/bin/true\n") == true)
    }

    @Test func itsSettingsAndRolesAreUnknownToACatalogWithoutIt() {
        #expect(throws: Manifest.Error(line: 2, message: "unknown setting 'echo_greeting'")) {
            try Manifest.parse("components: [base]\necho_greeting: hi\n")
        }
        #expect(throws: Manifest.Error(line: 2, message: "unknown names entry 'echo'")) {
            try Manifest.parse("components: [base]\nnames: {echo: my-echo}\n")
        }
        #expect(throws: Manifest.Error(line: 1, message: "unknown component 'echo' (known: \(Catalog.liteqube.components.map(\.id).joined(separator: ", ")))")) {
            try Manifest.parse("components: [base, echo]\n")
        }
    }
}
