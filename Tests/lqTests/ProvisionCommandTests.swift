import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

@Suite struct ProvisionCommandTests {
    /// A scratch folder with the default-install store and a manifest.
    func scratch(_ manifest: String) throws -> (store: String, manifest: String, policy: String) {
        let store = try LQ.copy("valid/qubes-default.xml")
        let folder = store.deletingLastPathComponent()
        let manifestPath = folder.appendingPathComponent("liteqube.yaml").path
        try manifest.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: folder.appendingPathComponent("policy.d").path, withIntermediateDirectories: true)
        return (store.path, manifestPath, folder.appendingPathComponent("policy.d").path)
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func memReportsTheServiceTotalsOfBothProfiles() throws {
        for (profile, total) in [("default", 1040), ("low-memory", 832)] {
            let files = try scratch("components: [base, network, usb]\nprofile: \(profile)\n")
            let result = try LQ.run("mem", "-f", files.manifest, "--store", files.store, "--json")
            #expect(result.status == 0, "\(result.stderr)")
            let report = try json(result.stdout)
            #expect(report["service_total_mib"] as? Int == total, "\(profile)")
            #expect(report["qubes_default_mib"] as? Int == 1888)
        }
    }

    @Test func planApplyAndDestroyThroughTheCommandLine() throws {
        let files = try scratch("components: [base, network, usb]\n")
        let original = try Data(contentsOf: URL(fileURLWithPath: files.store))
        let rpc = files.policy + "/../qubes-rpc"
        try FileManager.default.createDirectory(atPath: rpc, withIntermediateDirectories: true)
        let plan = try LQ.run("plan", "-f", files.manifest, "--store", files.store, "--policy-dir", files.policy, "--rpc-dir", rpc, "--json")
        #expect(plan.status == 0, "\(plan.stderr)")
        let operations = try json(plan.stdout)["operations"] as? [[String: Any]]
        #expect(operations?.first?["op"] as? String == "clone-template")
        #expect((try json(plan.stdout)["notes"] as? [String])?.first?.contains("debian-12-minimal") == true)
        #expect(try LQ.run("apply", "-f", files.manifest, "--store", files.store, "--policy-dir", files.policy, "--rpc-dir", rpc).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: rpc).sorted()
            == ["liteqube.Error", "liteqube.Message", "liteqube.SignalStorage", "liteqube.SignalTime", "liteqube.SignalTor", "liteqube.SignalWifi"])
        let again = try LQ.run("plan", "-f", files.manifest, "--store", files.store, "--policy-dir", files.policy, "--rpc-dir", rpc, "--json")
        #expect((try json(again.stdout)["operations"] as? [Any])?.isEmpty == true)
        #expect(try LQ.run("policy", "lint", files.policy).status == 0)
        #expect(try LQ.run("destroy", "-f", files.manifest, "--store", files.store).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: rpc).isEmpty)
        #expect(try LQ.run("store", "fmt", files.store).status == 0)
        let restored = try LQ.run("store", "fmt", LQ.fixture("valid/qubes-default.xml"), "-o", files.store + ".original")
        #expect(restored.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: files.store)) == (try Data(contentsOf: URL(fileURLWithPath: files.store + ".original"))))
        #expect(original.count > 0)
    }

    /// The template package (docs/packaging.md, "The template package") of lq's own release, from
    /// --binaries: copied into the template and installed there, destroy purging it; a file that is no
    /// Debian package is refused and a missing one named; without one the plan says so.
    @Test func templateStepsInstallTheTemplatePackage() throws {
        let files = try scratch("components: [base]\n")
        let folder = URL(fileURLWithPath: files.store).deletingLastPathComponent()
        let root = folder.appendingPathComponent("root").path
        let tools = folder.appendingPathComponent("tools").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        let common = ["plan", "-f", files.manifest, "--store", files.store, "--policy-dir", files.policy, "--in-qube", "folder:" + root, "--json"]
        func operations(_ result: LQ.Result, _ op: String) throws -> [[String: Any]] {
            (try json(result.stdout)["operations"] as? [[String: Any]] ?? []).filter { $0["op"] as? String == op }
        }
        let name = "lq-inqube_\(try LQ.release())_amd64.deb"

        let none = try LQ.run(arguments: common)
        #expect(none.status == 0, "\(none.stderr)")
        #expect((try json(none.stdout)["notes"] as? [String])?.contains("the template package lq-inqube is not installed into debian-core: give --binaries") == true)
        #expect(try operations(none, "place").allSatisfy { ($0["path"] as? String)?.hasSuffix(".deb") == false })

        try FileManager.default.copyItem(atPath: "/bin/true", toPath: tools + "/" + name)
        let notDebian = try LQ.run(arguments: common + ["--binaries", tools])
        #expect(notDebian.status == 1)
        #expect(notDebian.stderr.contains(tools + "/" + name + " is not a Debian package"), "\(notDebian.stderr)")

        try Data("!<arch>\ndebian-binary   stand-in\n".utf8).write(to: URL(fileURLWithPath: tools + "/" + name))
        let plan = try LQ.run(arguments: common + ["--binaries", tools])
        #expect(plan.status == 0, "\(plan.stderr)")
        let copies = try operations(plan, "place").filter { $0["kind"] as? String == "binary" }
        #expect(copies.compactMap { $0["path"] as? String } == ["/usr/lib/liteqube/" + name])
        #expect(copies.allSatisfy { ($0["source"] as? String) == tools + "/" + name })
        let install = try operations(plan, "run-command").first
        #expect(install?["command"] as? String == "/usr/lib/liteqube/template-package install /usr/lib/liteqube/" + name)
        #expect(install?["undo"] as? String == "/usr/lib/liteqube/template-package remove lq-inqube")

        let missing = try LQ.run(arguments: common + ["--binaries", root + "/nowhere"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains(root + "/nowhere/" + name + ": missing"), "\(missing.stderr)")
    }

    /// Connections holding secrets go into the keys qube, so a folder run
    /// needs a folder for it too; the manifest's folder is relative to it.
    @Test func networksNeedAFolderForTheKeysQube() throws {
        let files = try scratch("components: [base, network]\nnetworks: saved\n")
        let folder = URL(fileURLWithPath: files.manifest).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("saved"), withIntermediateDirectories: true)
        try "[wifi-security]\npsk=secret\n".write(to: folder.appendingPathComponent("saved/Home.nmconnection"), atomically: true, encoding: .utf8)
        let root = folder.appendingPathComponent("root").path
        let keys = folder.appendingPathComponent("keys").path
        let common = ["plan", "-f", files.manifest, "--store", files.store, "--policy-dir", files.policy, "--json", "--in-qube"]
        let unmapped = try LQ.run(arguments: common + ["folder:" + root])
        #expect(unmapped.status == 1)
        #expect(unmapped.stderr.contains("no folder stands for core-keys"), "\(unmapped.stderr)")
        let mapped = try LQ.run(arguments: common + ["folder:\(root),core-keys=\(keys)"])
        #expect(mapped.status == 0, "\(mapped.stderr)")
        let inKeys = (try json(mapped.stdout)["operations"] as? [[String: Any]] ?? []).filter { $0["qube"] as? String == "core-keys" && $0["op"] as? String == "place" }
        #expect(inKeys.compactMap { $0["path"] as? String } == ["/home/user/core-net", "/home/user/core-net/Home.nmconnection", "/home/user/core-net/secret_key"])
        #expect(try LQ.run(arguments: common + ["folder:\(root),core-keys"]).status == 2)
    }

    @Test func badManifestNamesTheLine() throws {
        let files = try scratch("components: [base]\nfrobnicate: yes\n")
        let result = try LQ.run("plan", "-f", files.manifest, "--store", files.store)
        #expect(result.status == 1)
        #expect(result.stderr.contains("line 2: unknown setting 'frobnicate'"))
    }

    @Test func graphIsDOTAndSVG() throws {
        let files = try scratch("components: [base]\n")
        let dot = try LQ.run("graph", "--store", files.store)
        #expect(dot.status == 0)
        #expect(dot.stdout.hasPrefix("digraph qubes {") && dot.stdout.hasSuffix("}\n"))
        let declared = Set(dot.stdout.split(separator: "\n").compactMap { line -> String? in
            line.contains("->") || !line.contains("[") ? nil : line.trimmingCharacters(in: .whitespaces).components(separatedBy: " [")[0]
        })
        for line in dot.stdout.split(separator: "\n") where line.contains("->") {
            let ends = line.trimmingCharacters(in: .whitespaces).components(separatedBy: " [")[0].components(separatedBy: " -> ")
            #expect(ends.count == 2 && ends.allSatisfy(declared.contains), "\(line)")
        }
        let svgPath = files.store + ".svg"
        #expect(try LQ.run("graph", "--store", files.store, "--svg", "-o", svgPath).status == 0)
        let parser = XMLParser(contentsOf: URL(fileURLWithPath: svgPath))!
        #expect(parser.parse(), "SVG must be well-formed XML")
    }
}
