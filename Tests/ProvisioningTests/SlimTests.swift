import Foundation
import LQCommon
import QubesStore
import Testing

@testable import Provisioning

/// debian-core's slimming (docs/liteqube.md, "Slimming debian-core"): the
/// policy as data, the step that applies it after the packages, and the
/// program's refusal to remove what must stay.
@Suite struct SlimTests {
    static let policyPath = "/usr/lib/liteqube/slim.policy"

    static func steps(_ manifest: Manifest) throws -> [TemplateStep] {
        try Overlay.templateSteps(manifest, package: nil, networks: [])
    }

    static func file(_ path: String, in steps: [TemplateStep]) -> TemplateEntry? {
        steps.lazy.compactMap { step -> TemplateEntry? in
            if case .entry(let entry) = step, entry.path == path { entry } else { nil }
        }.first
    }

    static func text(_ path: String, in steps: [TemplateStep]) -> String? {
        if let entry = file(path, in: steps), case .file(let text) = entry.kind { text } else { nil }
    }

    /// The words of the policy's lines that start with `key`.
    static func words(_ key: String, in policy: String) -> [String] {
        policy.split(separator: "\n").flatMap { line -> [String] in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            return words.first == key ? Array(words.dropFirst()) : []
        }
    }

    static var manifests: [Manifest] {
        var noInput = Manifest(components: [.base, .network, .usb])
        noInput.usbInputDevices = false
        return [Manifest(components: [.base]), Manifest(components: [.base, .network]), Manifest(components: [.base, .network, .usb]), noInput]
    }

    @Test func theStepRunsRightAfterThePackagesWithThePlacedPolicysDigest() throws {
        for manifest in Self.manifests {
            let steps = try Self.steps(manifest)
            let packages = try #require(steps.firstIndex { if case .packages = $0 { true } else { false } })
            guard case .command(let command) = steps[packages + 1] else {
                Issue.record("the step after the packages is not a command: \(steps[packages + 1])")
                continue
            }
            let policy = try #require(Self.text(Self.policyPath, in: steps))
            let digest = sha256Hex(Array(policy.utf8))
            #expect(command.run == "/usr/lib/liteqube/slim apply \(digest)")
            #expect(command.check == "/usr/lib/liteqube/slim check \(digest)")
            #expect(command.undo == "/usr/lib/liteqube/slim restore")
            // The program and its policy are in place before the packages (with the dpkg hook).
            let program = try #require(Self.file("/usr/lib/liteqube/slim", in: steps))
            #expect(program.mode == 0o755 && program.owner == "root")
            let placed = steps.firstIndex { if case .entry(let entry) = $0 { entry.path == Self.policyPath } else { false } }
            #expect(try #require(placed) < packages)
            let commands = steps.compactMap { if case .command(let command) = $0 { command.run } else { nil } }
            #expect(commands.filter { $0.hasPrefix("/usr/lib/liteqube/slim ") }.count == 1)
            // The autostart entries are turned off once the slimming has removed what it removes.
            let slim = try #require(commands.firstIndex { $0.hasPrefix("/usr/lib/liteqube/slim ") })
            #expect(try #require(commands.firstIndex(of: "/usr/lib/liteqube/autostart apply")) > slim)
        }
    }

    @Test func thePolicyNeedsExactlyTheComponentsPackages() throws {
        for manifest in Self.manifests {
            let policy = try #require(Self.text(Self.policyPath, in: try Self.steps(manifest)))
            let packages = manifest.components.flatMap { $0.packages(manifest) }
            #expect(Self.words("need", in: policy) == packages)
            #expect(!policy.contains("{{"))
        }
        let base = try #require(Self.text(Self.policyPath, in: try Self.steps(Manifest(components: [.base]))))
        #expect(!Self.words("need", in: base).contains("tor"))
    }

    /// The list never names what a component installs, what debian-core itself keeps, or an agent package.
    @Test func thePurgeListNeverNamesAKeptPackage() throws {
        for manifest in Self.manifests {
            let policy = try #require(Self.text(Self.policyPath, in: try Self.steps(manifest)))
            let purge = Set(Self.words("purge", in: policy))
            #expect(purge.count > 20)
            let kept = Set(Self.words("need", in: policy) + Self.words("keep", in: policy))
            #expect(purge.isDisjoint(with: kept))
            #expect(purge.allSatisfy { !$0.hasPrefix("qubes-") })
            #expect(Self.words("keep-matching", in: policy) == ["qubes-*"])
            #expect(Self.words("keep-priority", in: policy) == ["required"])
            for needed in ["init", "systemd-sysv", "udev", "kmod", "fdisk", "sudo", "netbase"] { #expect(kept.contains(needed)) }
        }
    }

    /// Another package list is another policy: the step's digest changes, so apply slims again.
    @Test func anotherManifestIsAnotherDigest() throws {
        let digests = try Self.manifests.map { manifest -> String in
            let steps = try Self.steps(manifest)
            guard let command = steps.lazy.compactMap({ step -> TemplateCommand? in if case .command(let command) = step { command } else { nil } }).first
            else { return "" }
            return command.run
        }
        #expect(Set(digests).count == digests.count && !digests.contains(""), "\(digests)")
    }

    @Test func thePlanShowsTheCommandAndItsUndo() throws {
        let command = TemplateCommand(summary: "remove the packages no component needs", run: "/x apply 1", check: "/x check 1", undo: "/x restore")
        let operation = Operation.runCommand(qube: "debian-core", command: command)
        #expect(operation.insideQube == "debian-core")
        #expect(operation.summary == "in debian-core, remove the packages no component needs: /x apply 1")
        #expect(operation.json.canonicalBytes() == JSONValue.object([
            "op": .string("run-command"), "qube": .string("debian-core"), "command": .string("/x apply 1"), "check": .string("/x check 1"),
            "undo": .string("/x restore"), "summary": .string(operation.summary),
        ]).canonicalBytes())
    }

    /// The program as rendered, against stand-ins for dpkg, dpkg-query, apt-mark and apt-get:
    /// when apt-get -s says a needed package would go, it refuses before changing anything.
    @Test func theProgramRefusesWhenAptWouldRemoveANeededPackage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lq-slim-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/bin", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var overlay = Overlay(manifest: Manifest(components: [.base]), networks: [], package: nil)
        overlay.component = "base"
        overlay.values["bin"] = folder
        overlay.values["slim_need"] = "tor"
        let policy = overlay.text("/usr/lib/liteqube/slim.policy")
        let program = overlay.text("/usr/lib/liteqube/slim")
        #expect(overlay.missing == nil)
        try policy.write(toFile: folder + "/slim.policy", atomically: true, encoding: .utf8)
        try program.write(toFile: folder + "/slim", atomically: true, encoding: .utf8)
        let stubs = [
            "dpkg": "echo amd64",
            // As dpkg-query prints them: Essential is empty unless the package has the field.
            "dpkg-query": "printf 'ii \\ttor\\tamd64\\t\\toptional\\nii \\tless\\tamd64\\t\\timportant\\nii \\tlibkept\\tamd64\\t\\trequired\\nii \\tbash\\tamd64\\tyes\\trequired\\n'",
            "apt-mark": "echo \"apt-mark $*\" >>\"$LOG\"",
            "apt-get": "echo \"apt-get $*\" >>\"$LOG\"; echo 'Remv less [1]'; echo \"Remv $REMOVES [2]\"",
        ]
        try writeStandIns(stubs, in: folder + "/bin")
        let digest = sha256Hex(Array(policy.utf8))
        // A component's package, and a package of a kept priority.
        for removed in ["tor", "libkept"] {
            try? FileManager.default.removeItem(atPath: folder + "/log")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = [folder + "/slim", "apply", digest]
            process.environment = ["PATH": folder + "/bin:/usr/bin:/bin", "LOG": folder + "/log", "TMPDIR": folder, "REMOVES": removed]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 1)
            #expect(message.contains("refusing: apt-get would remove \(removed) "), "\(message)")
            let calls = try String(contentsOfFile: folder + "/log", encoding: .utf8).split(separator: "\n")
            #expect(calls.contains { $0.hasPrefix("apt-get -s") })
            #expect(calls.allSatisfy { $0.hasPrefix("apt-get -s") || $0.contains("Dir::State::extended_states=") }, "\(calls)")
        }

        // A policy other than the planned one is refused before anything runs.
        let stale = Process()
        stale.executableURL = URL(fileURLWithPath: "/bin/sh")
        stale.arguments = [folder + "/slim", "apply", String(repeating: "0", count: 64)]
        stale.environment = ["PATH": folder + "/bin:/usr/bin:/bin", "LOG": folder + "/log", "TMPDIR": folder, "REMOVES": "tor"]
        stale.standardError = FileHandle.nullDevice
        try stale.run()
        stale.waitUntilExit()
        #expect(stale.terminationStatus == 1)
    }
}
