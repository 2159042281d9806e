import BootProtect
import Foundation
import Glibc
import Provisioning
import Testing

/// `files:` and `settings:` (docs/liteqube.md, "Customising"): trees from dom0 with a permissions list, and
/// the guard's switches per qube, checked by running the boot guard on what apply laid out.
@Suite struct CustomFilesTests {
    /// A dom0 folder for core-net's private volume and one for the template's root, with their lists.
    struct Trees {
        let directory: String
        var net: String { directory + "/core-net" }
        var core: String { directory + "/debian-core" }

        init(in directory: String) throws {
            self.directory = directory
            try FileManager.default.createDirectory(atPath: net + "/config", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: core + "/etc/vim", withIntermediateDirectories: true)
            try TemplateRoot.write(net + "/config/extra.sh", "#!/bin/sh\necho extra\n")
            try FileManager.default.createSymbolicLink(atPath: net + "/config/extra", withDestinationPath: "extra.sh")
            try Data([0, 0xff, 0xfe, 1]).write(to: URL(fileURLWithPath: core + "/etc/vim/vimrc.local"))
            try TemplateRoot.write(directory + "/core-net.permissions", """
                # core-net's private volume
                drwxr-xr-x\troot\troot\t./config
                -rwxr-x---\tuser\tuser\t./config/extra.sh
                lrwxrwxrwx root root ./config/extra

                """)
            try TemplateRoot.write(directory + "/debian-core.permissions", "drwxr-xr-x root root ./etc\ndrwxr-xr-x root root ./etc/vim\n-rw-r--r-- root root ./etc/vim/vimrc.local\n")
        }

        func read() throws -> [QubeFiles] {
            [
                try QubeFiles.read(role: .core, folder: core, permissions: directory + "/debian-core.permissions"),
                try QubeFiles.read(role: .net, folder: net, permissions: directory + "/core-net.permissions"),
            ]
        }
    }

    static func plan(_ system: TemplateTests.System, _ manifest: Manifest, _ files: [QubeFiles]) throws -> Plan {
        try Planner(
            backend: system.backend, policyDirectory: system.scratch.policy, readFile: Dom0Files.system.read, kernels: [],
            executor: system.executor, package: try system.root.package(), files: files
        ).plan(manifest)
    }

    static let manifest = try! Manifest.parse("""
        components: [base, network, usb]
        settings:
          net: {quarantine: false, debug: true}
          core: {allow_rogue: false}
        """)

    @Test func filesAndSettingsAreLaidOutThenNothingThenUndone() throws {
        let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let trees = try Trees(in: system.scratch.directory + "/custom")
        let original = try system.root.snapshot()
        let plan = try Self.plan(system, Self.manifest, try trees.read())
        #expect(plan.operations.map(\.summary).contains(
            "copy \(trees.net)/config/extra.sh to /etc/protect/template.core-net/config/extra.sh (user, 750) in debian-core"))
        try system.applier.apply(plan)
        let root = system.root
        #expect(try root.text("/etc/protect/template.core-net/config/extra.sh") == "#!/bin/sh\necho extra\n")
        #expect(root.owner("/etc/protect/template.core-net/config/extra.sh") == (1000, 1000, 0o750))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root.path + "/etc/protect/template.core-net/config/extra") == "extra.sh")
        #expect(try Data(contentsOf: URL(fileURLWithPath: root.path + "/etc/vim/vimrc.local")) == Data([0, 0xff, 0xfe, 1]))
        // The guard reads the settings files as it would at boot.
        let net = Settings.parse(Array(try root.text("/etc/protect/settings.core-net").utf8))
        #expect(net.issues.isEmpty && !net.settings.quarantine && net.settings.debug && net.settings.active)
        let core = Settings.parse(Array(try root.text("/etc/protect/settings.debian-core").utf8))
        #expect(core.issues.isEmpty && !core.settings.obscure && !core.settings.allowRogue)
        #expect(!FileManager.default.fileExists(atPath: root.path + "/etc/protect/settings.core-tor"))

        // At boot core-net gets the file with its owner and mode; without quarantine a planted file is deleted.
        let rw = system.scratch.directory + "/rw"
        try FileManager.default.createDirectory(atPath: rw + "/config", withIntermediateDirectories: true)
        try TemplateRoot.write(rw + "/config/planted", "#!/bin/sh\n", mode: 0o755)
        let boot = BootProtect.run(volume: .folder(rw), rules: root.path + "/etc/protect", options: ProtectOptions(qube: "core-net"))
        #expect(boot.errors.isEmpty, "\(boot.errors)")
        #expect(try String(contentsOfFile: rw + "/config/extra.sh", encoding: .utf8) == "#!/bin/sh\necho extra\n")
        var info = stat()
        #expect(lstat(rw + "/config/extra.sh", &info) == 0 && info.st_uid == 1000 && info.st_mode & 0o7777 == 0o750)
        #expect(!FileManager.default.fileExists(atPath: rw + "/config/planted") && !FileManager.default.fileExists(atPath: rw + "/QUARANTINE"))

        #expect(try Self.plan(system, Self.manifest, try trees.read()).operations.isEmpty)
        try system.applier.destroy()
        #expect(try system.root.snapshot() == original)
    }

    /// Stopped before each step that lays out a file of `files:` or a settings file, apply resumes to
    /// the uninterrupted result, and destroy from the partial state gives the original template back.
    @Test func interruptedWhileLayingOutFilesResumesOrUndoes() throws {
        let reference = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let plan = try Self.plan(reference, Self.manifest, try Trees(in: reference.scratch.directory + "/custom").read())
        let steps = plan.operations.indices.filter {
            let summary = plan.operations[$0].summary
            return ["/etc/protect/settings.", "/etc/protect/template.core-net/config/extra", "/etc/vim"].contains { summary.contains($0) }
        }
        #expect(steps.count == 6, "\(steps.map { plan.operations[$0].summary })")
        try reference.applier.apply(plan)
        let final = try reference.root.snapshot()
        for step in steps {
            for undo in [false, true] {
                let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
                let trees = try Trees(in: system.scratch.directory + "/custom")
                let original = try system.root.snapshot()
                #expect(throws: ProvisioningError.self) {
                    try system.applier.apply(try Self.plan(system, Self.manifest, try trees.read())) { event in
                        if case .starting(let index, _, _) = event, index == step { throw ProvisioningError(.ioFailure, "interrupted at \(index)") }
                    }
                }
                if undo {
                    try system.applier.destroy()
                    #expect(try system.root.snapshot() == original, "destroy after step \(step)")
                } else {
                    try system.applier.apply(try Self.plan(system, Self.manifest, try trees.read()))
                    #expect(try system.root.snapshot() == final, "resume after step \(step)")
                }
            }
        }
    }

    /// A file changed in dom0 after the plan is refused by apply; a changed tree is planned again.
    @Test func aTreeChangedSinceThePlanIsRefused() throws {
        let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let trees = try Trees(in: system.scratch.directory + "/custom")
        let plan = try Self.plan(system, Self.manifest, try trees.read())
        try TemplateRoot.write(trees.net + "/config/extra.sh", "#!/bin/sh\necho changed\n")
        #expect(throws: ProvisioningError.self) { try system.applier.apply(plan) }
        try system.applier.apply(try Self.plan(system, Self.manifest, try trees.read()))
        #expect(try system.root.text("/etc/protect/template.core-net/config/extra.sh") == "#!/bin/sh\necho changed\n")
    }

    @Test(arguments: [
        ("-rw-r--r-- root root ./config\n", "is not what", "/config"),
        ("drwxr-xr-x root root ./config\n", "not in the permissions list", "/config/extra"),
        ("drwxr-xr-x root root ./config\n-rwxr-x--- user user ./config/extra.sh\nlrwxrwxrwx root root ./config/extra\n-rw------- root root ./config/gone\n",
         "listed in", "/config/gone"),
        ("drwxr-xr-x root wheel ./config\n", "line 1: owner 'root' and group 'wheel'", "permissions"),
        ("drwxr-xr-x root root ../config\n", "line 1: '../config' is not a path inside the folder", "permissions"),
        ("drwxr-xr-x root root ./a/../b\n", "line 1: './a/../b' is not a path inside", "permissions"),
        ("\n\ndrw-r-xr-q root root ./config\n", "line 3: 'drw-r-xr-q' is not a mode", "permissions"),
        ("drwxr-xr-x root ./config\n", "line 1: expected MODE OWNER GROUP ./PATH", "permissions"),
        ("drwxr-xr-x root root ./config\ndrwxr-xr-x root root ./config\n", "line 2: ./config is listed twice", "permissions"),
    ])
    func aBadTreeOrListIsRefused(_ list: String, _ message: String, _ path: String) throws {
        let scratch = try Scratch()
        let trees = try Trees(in: scratch.directory)
        try TemplateRoot.write(trees.directory + "/core-net.permissions", list)
        let error = try #require(throws: ProvisioningError.self) {
            try QubeFiles.read(role: .net, folder: trees.net, permissions: trees.directory + "/core-net.permissions")
        }
        #expect(error.code == .invalidFiles)
        #expect(error.message.contains(message), "\(error)")
        #expect(error.path?.hasSuffix(path) == true, "\(error)")
    }

    @Test func modesReadAsLsShowsThem() {
        #expect(QubeFiles.parseMode("-rw-r--r--")! == ("-", 0o644))
        #expect(QubeFiles.parseMode("drwxrwsr-x")! == ("d", 0o2775))
        #expect(QubeFiles.parseMode("-rwsr-x--T")! == ("-", 0o5750))
        #expect(QubeFiles.parseMode("drwxrwxrwt")! == ("d", 0o1777))
        #expect(QubeFiles.parseMode("-rwtr--r--") == nil && QubeFiles.parseMode("prw-r--r--") == nil && QubeFiles.parseMode("-rw-r--r-") == nil)
    }

    /// A tree may not replace what Liteqube lays out; the manifest's keys name the qube and the switches.
    @Test func treesAndSettingsAreChecked() throws {
        let system = try TemplateTests.System(store: TemplateTests.provisionedStore)
        let folder = system.scratch.directory + "/hosts"
        try FileManager.default.createDirectory(atPath: folder + "/etc", withIntermediateDirectories: true)
        try TemplateRoot.write(folder + "/etc/hosts", "127.0.0.1 evil\n")
        try TemplateRoot.write(folder + ".permissions", "drwxr-xr-x root root ./etc\n-rw-r--r-- root root ./etc/hosts\n")
        let hosts = try QubeFiles.read(role: .core, folder: folder, permissions: folder + ".permissions")
        let error = try #require(throws: ProvisioningError.self) { try Self.plan(system, Self.manifest, [hosts]) }
        #expect(error.message.contains("files.core: Liteqube lays out this path itself") && error.path == "/etc/hosts", "\(error)")
        let usb = QubeFiles(role: .usb, entries: [])
        let baseOnly = try Manifest.parse("components: [base]\n")
        let missing = try #require(throws: ProvisioningError.self) { try Self.plan(system, baseOnly, [usb]) }
        #expect(missing.message == "files.usb: no component of the manifest has this qube", "\(missing)")

        let manifest = try Manifest.parse("components: [base]\nfiles:\n  net:\n    folder: custom/core-net\n    permissions: custom/core-net.permissions\n")
        #expect(manifest.files[.net] == Manifest.FilesSource(folder: "custom/core-net", permissions: "custom/core-net.permissions"))
        for (text, line, message) in [
            ("files:\n  net:\n    folder: x\n", 4, "files.net needs both folder and permissions"),
            ("files:\n  net: x\n", 3, "files.net must be a mapping"),
            ("files:\n  net: {folder: x, owner: root}\n", 3, "unknown files.net entry 'owner'"),
            ("settings:\n  net: {quarantine: maybe}\n", 3, "settings.net.quarantine must be true or false"),
            ("settings:\n  net: {paranoid: true}\n", 3, "unknown settings.net entry 'paranoid'"),
            ("settings:\n  nosuch: {debug: true}\n", 3, "unknown settings entry 'nosuch'"),
            ("settings:\n  core: {obscure: true}\n", 3, "settings.core.obscure cannot be true"),
        ] {
            let error = try #require(throws: Manifest.Error.self) { try Manifest.parse("components: [base]\n" + text) }
            #expect(error.location?.line == line && error.message.contains(message), "\(error)")
        }
    }
}
