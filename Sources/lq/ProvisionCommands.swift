import ArgumentParser
import InQubeTool
import Foundation
import LQCommon
import Provisioning
import QubesAdmin
import QubesStore
import Topology

/// The manifest, for every command that needs its settings or only its qube names.
struct ManifestFile: ParsableArguments {
    @Option(name: [.customShort("f"), .customLong("file")], help: "The Liteqube manifest.") var path = "liteqube.yaml"

    func load() throws -> Manifest {
        guard let data = FileManager.default.contents(atPath: path) else { throw CommandFailure("\(path): cannot read the manifest") }
        do {
            return try Manifest.parse(String(decoding: data, as: UTF8.self), file: path)
        } catch let error as Manifest.Error {
            throw CommandFailure("\(error)")
        }
    }

    /// The manifest when its file exists, else the defaults (for commands that need only qube names).
    func loadIfPresent() throws -> Manifest { FileManager.default.fileExists(atPath: path) ? try load() : Manifest() }
}

/// Options shared by plan, apply, destroy and mem.
struct ManifestOptions: ParsableArguments {
    @OptionGroup var file: ManifestFile
    @Option(help: "Folder of the qrexec policy files.") var policyDir = "/etc/qubes/policy.d"
    @Option(help: ArgumentHelp("dom0's qrexec service folder (Liteqube's notification services go there).", valueName: "dir"))
    var rpcDir = "/etc/qubes-rpc"
    @Option(help: "The write-ahead journal (default: liteqube.journal.json beside the manifest).") var journal: String?
    @Option(
        name: .customLong("in-qube"),
        help: "How steps inside qubes run: qvm-run, or folder:DIR[,QUBE=DIR…] for folders standing for the template's root and other qubes' (default: qvm-run with --socket; left out with --store).",
        transform: { try InQubeExecution(parsing: $0) })
    var inQube: InQubeExecution?
    @Option(help: ArgumentHelp(
        "Folder of the template package \(TemplatePackage.fileName(version: Tool.release)) installed into the template (default: the RPM's ../share/lq or beside this lq, when it is there).",
        valueName: "dir"))
    var binaries: String?

    /// The template package of this lq's release (`nil`: none given and none where the RPM or a
    /// release folder puts it; docs/packaging.md, "The template package").
    func templatePackage() throws -> TemplatePackage? {
        if let binaries { return try TemplatePackage.load(from: binaries, version: Tool.release) }
        guard let own = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() else { return nil }
        let name = TemplatePackage.fileName(version: Tool.release)
        let folders = [own.deletingLastPathComponent().appendingPathComponent("share/lq").path, own.path]
        guard let folder = folders.first(where: { FileManager.default.fileExists(atPath: $0 + "/" + name) }) else { return nil }
        do {
            return try TemplatePackage.load(from: folder, version: Tool.release)
        } catch let error as ProvisioningError {
            Terminal.error("lq: the template package is not installed into the template: \(error)")
            return nil
        }
    }

    /// The executor for steps inside qubes (none offline unless --in-qube names one).
    func executor(_ options: BackendOptions, manifest: Manifest) throws -> Executor? {
        guard let inQube else { return options.isOffline ? nil : QvmRunExecutor() }
        return inQube.executor(for: manifest)
    }

    var journalPath: String {
        journal ?? URL(fileURLWithPath: file.path).deletingLastPathComponent().appendingPathComponent("liteqube.journal.json").path
    }

    /// Kernels installed in dom0.
    static var installedKernels: Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: "/var/lib/qubes/vm-kernels")) ?? [])
    }

    /// A dom0 path of the manifest, relative to the manifest's folder unless absolute.
    func besideManifest(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: file.path).deletingLastPathComponent().appendingPathComponent(path).path
    }

    /// The manifest's network connections folder.
    func networks(_ manifest: Manifest) throws -> [NetworkConnection] {
        guard let folder = manifest.networks else { return [] }
        return try NetworkConnection.read(folder: besideManifest(folder))
    }

    /// The manifest's `files:` trees, in role order.
    func files(_ manifest: Manifest) throws -> [QubeFiles] {
        try manifest.files.sorted { $0.key.rawValue < $1.key.rawValue }.map { role, source in
            try QubeFiles.read(role: role, folder: besideManifest(source.folder), permissions: besideManifest(source.permissions))
        }
    }

    func planner(_ backend: Backend, _ options: BackendOptions, manifest: Manifest) throws -> Planner {
        let executor = try executor(options, manifest: manifest)
        return Planner(
            backend: backend, policyDirectory: policyDir, readFile: Dom0Files.system.read, kernels: Self.installedKernels,
            executor: executor, package: executor == nil ? nil : try templatePackage(), networks: try networks(manifest),
            rpcDirectory: rpcDir, files: try files(manifest), repositoryRoot: "")
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show what `lq apply` would change, and the memory budget before → after.")

    @OptionGroup var options: BackendOptions
    @OptionGroup var manifestOptions: ManifestOptions

    func run() throws {
        let manifest = try manifestOptions.file.load()
        try options.run(qube: nil) { backend in
            let plan = try manifestOptions.planner(backend, options, manifest: manifest).plan(manifest)
            let before = try MemoryBudget(backend: backend, manifest: manifest)
            let after = MemoryBudget(desired: plan.desired)
            if options.json {
                Terminal.write(JSONValue.object([
                    "operations": .array(plan.operations.map(\.json)),
                    "notes": .array(plan.notes.map(JSONValue.string)),
                    "blockers": .array(plan.blockers.map(JSONValue.string)),
                    "memory": MemoryReport.json(before: before, after: after, manifest: manifest),
                ]).canonicalBytes())
                return
            }
            var lines = ["Liteqube \(manifest.components.map(\.id).joined(separator: ", ")) (profile \(manifest.profile.rawValue))"]
            lines += plan.notes.map { "note: \($0)" }
            lines += plan.blockers.map { "blocked: \($0)" }
            if plan.operations.isEmpty {
                lines.append("Nothing to do.")
            } else {
                lines.append("\(plan.operations.count) operations:")
                for (index, operation) in plan.operations.enumerated() { lines.append("  \(index + 1). \(operation.summary)") }
            }
            lines.append(MemoryReport.text(before: before, after: after, manifest: manifest))
            Terminal.write(lines.joined(separator: "\n") + "\n")
        }
    }
}

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Make the system match the manifest, journaling every prior value first.",
        discussion: "Running apply again after an interruption continues where it stopped.")

    @OptionGroup var options: BackendOptions
    @OptionGroup var manifestOptions: ManifestOptions

    func run() throws {
        let manifest = try manifestOptions.file.load()
        try options.run(qube: nil) { backend in
            let planner = try manifestOptions.planner(backend, options, manifest: manifest)
            let applier = Applier(backend: backend, journalPath: manifestOptions.journalPath, executor: planner.executor)
            // Planned under the journal's lock: another apply or destroy first finishes what it changes.
            let plan = try applier.exclusively(waiting: JournalWait.say) {
                let plan = try planner.plan(manifest)
                try applier.apply(plan) { event in
                    if case .starting(let index, let count, let operation) = event, !options.json {
                        Terminal.write("[\(index + 1)/\(count)] \(operation.summary)\n")
                    }
                }
                return plan
            }
            if options.json {
                Terminal.write(JSONValue.object(["applied": .array(plan.operations.map(\.json))]).canonicalBytes())
            } else {
                Terminal.write(plan.operations.isEmpty ? "Nothing to do.\n" : "Done: \(plan.operations.count) operations.\n")
            }
        }
    }
}

struct DestroyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy", abstract: "Undo what the journal records, newest first, restoring every prior value.")

    @OptionGroup var options: BackendOptions
    @OptionGroup var manifestOptions: ManifestOptions

    func run() throws {
        // The journal says what to undo; the manifest only names the qubes (folder executor).
        let manifest = try manifestOptions.file.loadIfPresent()
        try options.run(qube: nil) { backend in
            let applier = Applier(backend: backend, journalPath: manifestOptions.journalPath, executor: try manifestOptions.executor(options, manifest: manifest))
            var undone: [Provisioning.Operation] = []
            try applier.exclusively(waiting: JournalWait.say) {
                try applier.destroy { operation in
                    undone.append(operation)
                    if !options.json { Terminal.write("undo: \(operation.summary)\n") }
                }
            }
            if options.json { Terminal.write(JSONValue.object(["undone": .array(undone.map(\.json))]).canonicalBytes()) }
        }
    }
}

struct MemCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mem", abstract: "The memory budget of the service qubes now, and (with a manifest) after apply.")

    @OptionGroup var options: BackendOptions
    @OptionGroup var manifestOptions: ManifestOptions

    func run() throws {
        let manifest = try manifestOptions.file.loadIfPresent()
        try options.run(qube: nil) { backend in
            let before = try MemoryBudget(backend: backend, manifest: manifest)
            let qubes = try backend.qubes()
            let desired = try DesiredState(
                manifest, templates: qubes.filter { $0.vmClass == .templateVM }.map(\.name), qubes: Set(qubes.map(\.name)), kernels: nil)
            let after = MemoryBudget(desired: desired)
            if options.json {
                Terminal.write(MemoryReport.json(before: before, after: after, manifest: manifest).canonicalBytes())
            } else {
                Terminal.write(MemoryReport.table(after) + MemoryReport.text(before: before, after: after, manifest: manifest) + "\n")
            }
        }
    }
}

/// Printing memory budgets.
enum MemoryReport {
    static func json(before: MemoryBudget, after: MemoryBudget, manifest: Manifest) -> JSONValue {
        .object([
            "before": before.json, "after": after.json,
            "service_total_mib": .integer(String(after.serviceTotal(manifest))),
            "qubes_default_mib": .integer(String(MemoryBudget.qubesDefaultTotal)),
        ])
    }

    static func text(before: MemoryBudget, after: MemoryBudget, manifest: Manifest) -> String {
        let now = before.totals
        let planned = after.totals
        func groups(_ totals: [Presence: Int]) -> String {
            Presence.allCases.map { "\($0.rawValue) \(totals[$0] ?? 0)" }.joined(separator: ", ")
        }
        return "Memory (MiB): now \(groups(now)); after \(groups(planned)).\n"
            + "Network, firewall, Tor and USB: \(after.serviceTotal(manifest)) MiB with Liteqube, against \(MemoryBudget.qubesDefaultTotal) MiB for the Qubes 4.3 defaults (sys-net, sys-firewall, sys-usb, sys-whonix and stub domains)."
    }

    static func table(_ budget: MemoryBudget) -> String {
        Table.render(
            header: ["QUBE", "MEMORY", "STUBDOMAIN", "PRESENCE"],
            rows: budget.entries.map { [$0.qube, String($0.memory), String($0.stubdomain), $0.presence.rawValue] })
    }
}

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "The qube topology (netvm chains, templates, PCI devices, memory) as Graphviz DOT.",
        discussion: "--svg draws it directly (lq's own layout; Graphviz is not needed).")

    @OptionGroup var options: BackendOptions
    @Flag(help: "Write SVG instead of DOT.") var svg = false
    @Option(name: .shortAndLong, help: "Write to this file instead of standard output.") var output: String?

    func run() throws {
        try options.run(qube: nil) { backend in
            let topology = try Topology(backend: backend)
            let text = svg ? topology.svg : topology.dot
            if let output {
                guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8)) else {
                    throw CommandFailure("\(output): cannot write")
                }
            } else {
                Terminal.write(text)
            }
        }
    }
}

/// What apply and destroy say while another run holds the journal.
enum JournalWait {
    static func say(_ lock: String) {
        Terminal.error("lq: waiting for another apply or destroy on this journal to finish (lock \(lock))")
    }
}
