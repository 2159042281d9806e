import Foundation
import QubesAdmin
import Testing

@testable import Provisioning

/// `onion_updates` (docs/liteqube.md, "Onion updates"): dom0's repositories and debian-core's apt
/// sources, as installed, rewritten to the onion mirrors; destroy puts them back.
@Suite struct OnionUpdatesTests {
    static let onionQubes = "qubesosfasa4zl44o4tws22di6kepyzfeqv3tg4e3ztknltfxqrymdad.onion"

    /// dom0's repository as Qubes 4.3 installs it (Fedora 41 paths, a metalink per repository).
    static let dom0Repo = """
        [qubes-dom0-current]
        name = Qubes Dom0 Repository (updates)
        #baseurl = https://yum.qubes-os.org/r$releasever/current/host/fc41
        #baseurl = http://yum.\(onionQubes)/r$releasever/current/host/fc41
        metalink = https://yum.qubes-os.org/r$releasever/current/host/fc41/repodata/repomd.xml.metalink
        enabled = 1
        gpgcheck = 1

        [qubes-dom0-current-testing]
        name = Qubes Dom0 Repository (updates-testing)
        metalink = https://yum.qubes-os.org/r$releasever/current-testing/host/fc41/repodata/repomd.xml.metalink
        enabled = 0

        """
    static let templatesRepo = """
        [qubes-templates-itl]
        name = Qubes Templates repository
        baseurl = https://yum.qubes-os.org/r$releasever/templates-itl
        metalink = https://yum.qubes-os.org/r$releasever/templates-itl/repodata/repomd.xml.metalink
        enabled = 1

        """

    static var manifest: Manifest {
        var manifest = Manifest(components: [.base, .network, .usb])
        manifest.onionUpdates = true
        return manifest
    }

    @Test func dom0RepositoriesKeepTheirReleasesOnTheOnionMirror() {
        let onion = OnionMirrors.dom0Repository(Self.dom0Repo)
        #expect(onion.contains("\nbaseurl = http://yum.\(Self.onionQubes)/r$releasever/current/host/fc41\n"))
        #expect(onion.contains("\nbaseurl = http://yum.\(Self.onionQubes)/r$releasever/current-testing/host/fc41\n"))
        #expect(onion.contains("\n#metalink = https://yum.qubes-os.org/r$releasever/current/host/fc41/repodata/repomd.xml.metalink\n"))
        #expect(!onion.split(separator: "\n").contains { $0.hasPrefix("metalink") || ($0.hasPrefix("baseurl") && $0.contains("qubes-os.org")) })
        #expect(onion.contains("\n#baseurl = https://yum.qubes-os.org/r$releasever/current/host/fc41\n"), "comments stay")
        #expect(OnionMirrors.dom0Repository(onion) == onion, "rewriting again changes nothing")

        // One baseurl a section: the clearnet one becomes the onion's, the metalink only a comment.
        let templates = OnionMirrors.dom0Repository(Self.templatesRepo)
        #expect(templates.split(separator: "\n").filter { $0.hasPrefix("baseurl") } == ["baseurl = http://yum.\(Self.onionQubes)/r$releasever/templates-itl"])
        #expect(OnionMirrors.dom0Repository(templates) == templates)
        // A metalink somewhere else, or of another form, is left alone.
        let other = "[x]\nmetalink = https://mirrors.fedoraproject.org/metalink?repo=fedora-41\n"
        #expect(OnionMirrors.dom0Repository(other) == other)
    }

    struct Dom0 {
        let scratch: Scratch
        let root: String
        let backend: OfflineBackend

        init() throws {
            scratch = try Scratch()
            root = scratch.directory + "/dom0"
            backend = OfflineBackend(path: scratch.store, random: .seeded(5))
            for (path, text) in zip(OnionMirrors.dom0Files, [OnionUpdatesTests.dom0Repo, OnionUpdatesTests.templatesRepo]) {
                try FileManager.default.createDirectory(atPath: root + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try TemplateRoot.write(root + path, text)
            }
        }

        func plan(_ manifest: Manifest = OnionUpdatesTests.manifest) throws -> Plan {
            try Planner(
                backend: backend, policyDirectory: scratch.policy, readFile: Dom0Files.system.read, kernels: [], rpcDirectory: scratch.rpc,
                repositoryRoot: root
            ).plan(manifest)
        }

        var applier: Applier { Applier(backend: backend, journalPath: scratch.journal) }

        func text(_ index: Int) throws -> String { try String(contentsOfFile: root + OnionMirrors.dom0Files[index], encoding: .utf8) }

        func writes(_ plan: Plan) -> [String] {
            plan.operations.compactMap { if case .writeFile(let path, _, _) = $0, path.hasPrefix(root) { path } else { nil } }
        }
    }

    @Test func dom0IsSwitchedOnceAndDestroyPutsItsRepositoriesBack() throws {
        let dom0 = try Dom0()
        #expect(dom0.writes(try dom0.plan(TemplateTests.manifest)).isEmpty, "off by default")
        let plan = try dom0.plan()
        #expect(dom0.writes(plan) == OnionMirrors.dom0Files.map { dom0.root + $0 })
        try dom0.applier.apply(plan)
        #expect(try dom0.text(0) == OnionMirrors.dom0Repository(Self.dom0Repo))
        #expect(try dom0.text(1) == OnionMirrors.dom0Repository(Self.templatesRepo))
        #expect(try dom0.plan().operations.isEmpty)
        try dom0.applier.destroy()
        #expect(try dom0.text(0) == Self.dom0Repo && dom0.text(1) == Self.templatesRepo)

        // Interrupted before the second file, destroy puts the first back, and apply resumes.
        let writeIndex = try #require(try dom0.plan().operations.lastIndex { if case .writeFile(let path, _, _) = $0 { path.hasSuffix(".repo") } else { false } })
        for resume in [false, true] {
            #expect(throws: ProvisioningError.self) {
                try dom0.applier.apply(try dom0.plan()) { event in
                    if case .starting(let index, _, _) = event, index == writeIndex { throw ProvisioningError(.ioFailure, "interrupted") }
                }
            }
            #expect(try dom0.text(0) != Self.dom0Repo && dom0.text(1) == Self.templatesRepo)
            if resume {
                try dom0.applier.apply(try dom0.plan())
                #expect(try dom0.text(1) == OnionMirrors.dom0Repository(Self.templatesRepo))
            }
            try dom0.applier.destroy()
            #expect(try dom0.text(0) == Self.dom0Repo && dom0.text(1) == Self.templatesRepo)
        }
    }

    /// Without dom0's files (a missing one, or no root given) nothing is written, and the plan says so.
    @Test func missingRepositoriesAreLeftOut() throws {
        let dom0 = try Dom0()
        try FileManager.default.removeItem(atPath: dom0.root + OnionMirrors.dom0Files[1])
        #expect(dom0.writes(try dom0.plan()) == [dom0.root + OnionMirrors.dom0Files[0]])
        let plan = try Planner(backend: dom0.backend, policyDirectory: dom0.scratch.policy, readFile: Dom0Files.system.read, kernels: [])
            .plan(Self.manifest)
        #expect(plan.notes.contains("dom0's update repositories are left as they are (onion_updates needs dom0's files)"))
    }

    static var script: String {
        get throws { try #require(try TemplateTextTests.texts(manifest).first { $0.path == "/usr/lib/liteqube/onion-sources" }).text }
    }

    /// Runs the template's program on a folder standing for `/etc/apt`; its exit status.
    static func run(_ action: String, _ dir: String, _ state: String) throws -> Int32 {
        let file = dir + "/../onion-sources"
        try TemplateRoot.write(file, try script, mode: 0o755)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [file, action, dir, state]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Debian 13's deb822 sources and the agent's Qubes 4.3 list: the releases stay, the hosts move,
    /// security.debian.org stays; restore gives the same bytes and modes back.
    @Test func theTemplatesSourcesMoveToTheOnionMirrorsAndBack() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("lq-onion-\(UUID().uuidString)").path
        let dir = base + "/apt"
        let state = base + "/state"
        try FileManager.default.createDirectory(atPath: dir + "/sources.list.d", withIntermediateDirectories: true)
        let debian = "Types: deb\nURIs: https://deb.debian.org/debian\nSuites: trixie trixie-updates\n\nTypes: deb\nURIs: https://deb.debian.org/debian-security\nSuites: trixie-security\n"
        let qubes = "deb [arch=amd64 signed-by=/usr/share/keyrings/qubes-archive-keyring-4.3.gpg ] https://deb.qubes-os.org/r4.3/vm trixie main\n"
        let plain = "deb http://deb.debian.org/debian bookworm main\n"
        try TemplateRoot.write(dir + "/sources.list.d/debian.sources", debian)
        try TemplateRoot.write(dir + "/sources.list.d/qubes-r4.list", qubes, mode: 0o600)
        try TemplateRoot.write(dir + "/sources.list", plain)
        let original = try TemplateRoot(existing: dir).snapshot()

        #expect(try Self.run("check", dir, state) == 1)
        #expect(try Self.run("apply", dir, state) == 0)
        let onionDebian = "http://\(OnionMirrors.debian)/debian"
        #expect(try String(contentsOfFile: dir + "/sources.list.d/debian.sources", encoding: .utf8)
            == debian.replacingOccurrences(of: "https://deb.debian.org/debian\n", with: onionDebian + "\n"))
        #expect(try String(contentsOfFile: dir + "/sources.list.d/qubes-r4.list", encoding: .utf8)
            == qubes.replacingOccurrences(of: "https://deb.qubes-os.org/", with: "http://deb.\(Self.onionQubes)/"))
        #expect(try String(contentsOfFile: dir + "/sources.list", encoding: .utf8) == "deb \(onionDebian) bookworm main\n")
        #expect(TemplateRoot(existing: dir).owner("/sources.list.d/qubes-r4.list").mode == 0o600)
        #expect(try Self.run("check", dir, state) == 0)
        let applied = try TemplateRoot(existing: dir).snapshot()
        #expect(try Self.run("apply", dir, state) == 0)
        #expect(try TemplateRoot(existing: dir).snapshot() == applied, "applied twice, the same")

        #expect(try Self.run("restore", dir, state) == 0)
        #expect(try TemplateRoot(existing: dir).snapshot() == original)
        #expect(!FileManager.default.fileExists(atPath: state))
        #expect(try Self.run("restore", dir, state) == 0, "restore without apply does nothing")
        #expect(try Self.run("frobnicate", dir, state) == 1)
    }

    /// The program goes in before the packages, its apply runs after them, and destroy runs its restore.
    @Test func theTemplateStepsRunTheProgramAfterThePackages() throws {
        let steps = try Overlay.templateSteps(Self.manifest, package: nil, networks: [])
        let program = try #require(steps.firstIndex { if case .entry(let entry) = $0 { entry.path == "/usr/lib/liteqube/onion-sources" } else { false } })
        let packages = try #require(steps.firstIndex { if case .packages = $0 { true } else { false } })
        let command = try #require(steps.firstIndex { if case .command(let command) = $0 { command.run.contains("onion-sources apply") } else { false } })
        #expect(program < packages && packages < command)
        guard case .command(let step) = steps[command] else { return }
        #expect(step.check == "/usr/lib/liteqube/onion-sources check /etc/apt /var/lib/liteqube/onion-sources")
        #expect(step.undo == "/usr/lib/liteqube/onion-sources restore /etc/apt /var/lib/liteqube/onion-sources")
        #expect(!(try Overlay.templateSteps(TemplateTests.manifest, package: nil, networks: [])).contains {
            if case .command(let command) = $0 { command.run.contains("onion-sources") } else { false }
        })
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func theProgramPassesShellcheck() throws {
        #expect(try Shellcheck.passes(try Self.script))
    }
}

extension TemplateRoot {
    /// A folder that is already there, for its snapshot.
    init(existing path: String) {
        self.path = path
        self.binaries = path
    }
}
