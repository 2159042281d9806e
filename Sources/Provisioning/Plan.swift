import LQCommon
import QubesAdmin
import QubesStore

/// One change `lq apply` makes, in the order of the plan.
public enum Operation: Sendable, Hashable, Codable {
    /// Clone a TemplateVM (features and volumes) under a new name and label.
    case cloneTemplate(source: String, name: String, label: String)
    case createQube(name: String, vmClass: VMClass, template: String?, label: String)
    /// Set a property (`qube` nil: global); `value` is Admin API text, "" = none.
    case setProperty(qube: String?, name: String, value: String)
    case setFeature(qube: String, name: String, value: String)
    /// Move a PCI device: unassign from `from`, assign to `to` with `options`.
    case moveDevice(from: String, to: String, port: String, identity: String, options: [String: String])
    /// Write a dom0 file (a policy file, a qrexec service), created or replaced.
    case writeFile(path: String, content: String, mode: Int)
    /// Put a file, folder or symlink into a qube (the template) through the executor.
    case place(qube: String, entry: TemplateEntry)
    /// Install packages in a qube (the template) through the executor.
    case installPackages(qube: String, packages: [String])
    /// Run a component's command in a qube (the template) through the executor; destroy runs its undo.
    case runCommand(qube: String, command: TemplateCommand)
    /// Grow a qube's volume to `size` bytes (`admin.vm.volume.Resize`).
    case resizeVolume(qube: String, volume: String, size: Int64)

    /// The qube whose inside (files, packages) this changes through the executor.
    public var insideQube: String? {
        switch self {
        case .place(let qube, _), .installPackages(let qube, _), .runCommand(let qube, _): qube
        default: nil
        }
    }

    /// A one-line description for people.
    public var summary: String {
        switch self {
        case .cloneTemplate(let source, let name, let label): "clone template \(source) as \(name) (label \(label))"
        case .createQube(let name, let vmClass, let template, let label):
            "create \(vmClass.rawValue) \(name)" + (template.map { " from \($0)" } ?? "") + " (label \(label))"
        case .setProperty(let qube, let name, let value):
            "set \(qube.map { "\($0) " } ?? "global ")\(name) = \(value.isEmpty ? "none" : value)"
        case .setFeature(let qube, let name, let value): "set feature \(qube) \(name) = '\(value)'"
        case .moveDevice(let from, let to, let port, let identity, _): "move PCI device \(port) (\(identity)) from \(from) to \(to)"
        case .writeFile(let path, let content, let mode):
            "write \(path) (\(content.split(separator: "\n").count) lines, mode \(String(mode, radix: 8)))"
        case .place(let qube, let entry):
            switch entry.kind {
            case .file: "put file \(entry.path) (\(entry.owner), \(String(entry.mode, radix: 8))) into \(qube)"
            case .binary(let source, _): "copy \(source) to \(entry.path) (\(entry.owner), \(String(entry.mode, radix: 8))) in \(qube)"
            case .directory: "make folder \(entry.path) (\(entry.owner), \(String(entry.mode, radix: 8))) in \(qube)"
            case .symlink(let target): "link \(entry.path) → \(target) in \(qube)"
            }
        case .installPackages(let qube, let packages): "install packages in \(qube): \(packages.joined(separator: " "))"
        case .runCommand(let qube, let command): "in \(qube), \(command.summary): \(command.run)"
        case .resizeVolume(let qube, let volume, let size): "grow \(qube)'s \(volume) volume to \(size >> 20) MiB"
        }
    }

    /// The operation as canonical JSON data.
    public var json: JSONValue {
        var members: [String: JSONValue] = ["summary": .string(summary)]
        switch self {
        case .cloneTemplate(let source, let name, let label):
            members.merge(["op": .string("clone-template"), "source": .string(source), "qube": .string(name), "label": .string(label)]) { $1 }
        case .createQube(let name, let vmClass, let template, let label):
            members.merge([
                "op": .string("create-qube"), "qube": .string(name), "class": .string(vmClass.rawValue),
                "template": template.map(JSONValue.string) ?? .null, "label": .string(label),
            ]) { $1 }
        case .setProperty(let qube, let name, let value):
            members.merge([
                "op": .string(qube == nil ? "set-global-property" : "set-property"), "qube": qube.map(JSONValue.string) ?? .null,
                "property": .string(name), "value": .string(value),
            ]) { $1 }
        case .setFeature(let qube, let name, let value):
            members.merge(["op": .string("set-feature"), "qube": .string(qube), "feature": .string(name), "value": .string(value)]) { $1 }
        case .moveDevice(let from, let to, let port, let identity, let options):
            members.merge([
                "op": .string("move-pci-device"), "from": .string(from), "to": .string(to), "port": .string(port),
                "identity": .string(identity), "options": .object(options.mapValues(JSONValue.string)),
            ]) { $1 }
        case .writeFile(let path, _, let mode):
            members.merge(["op": .string("write-file"), "path": .string(path), "mode": .string(String(mode, radix: 8))]) { $1 }
        case .place(let qube, let entry):
            let kind: (String, [String: JSONValue]) = switch entry.kind {
            case .file: ("file", [:])
            case .binary(let source, let sha256): ("binary", ["source": .string(source), "sha256": .string(sha256)])
            case .directory: ("directory", [:])
            case .symlink(let target): ("symlink", ["target": .string(target)])
            }
            members.merge([
                "op": .string("place"), "qube": .string(qube), "path": .string(entry.path), "kind": .string(kind.0),
                "owner": .string(entry.owner), "mode": .string(String(entry.mode, radix: 8)),
            ]) { $1 }
            members.merge(kind.1) { $1 }
        case .installPackages(let qube, let packages):
            members.merge(["op": .string("install-packages"), "qube": .string(qube), "packages": .array(packages.map(JSONValue.string))]) { $1 }
        case .runCommand(let qube, let command):
            members.merge([
                "op": .string("run-command"), "qube": .string(qube), "command": .string(command.run), "check": .string(command.check),
                "undo": .string(command.undo),
            ]) { $1 }
        case .resizeVolume(let qube, let volume, let size):
            members.merge(["op": .string("resize-volume"), "qube": .string(qube), "volume": .string(volume), "size": .string(String(size))]) { $1 }
        }
        return .object(members)
    }
}

/// The difference between the desired and the current state.
public struct Plan: Sendable {
    public var operations: [Operation]
    public var notes: [String]
    public var desired: DesiredState
    /// What must change on the system before the plan can be applied (apply refuses while any is left).
    public var blockers: [String] = []
}

/// Reads the current state through a `Backend` and lists what must change.
public struct Planner {
    public let backend: Backend
    /// The folder the Liteqube policy file goes to.
    public let policyDirectory: String
    /// dom0's qrexec service folder (`/etc/qubes-rpc`); `nil`: the dom0 services are left out.
    public let rpcDirectory: String?
    /// Reads a policy file's current text (`nil` when absent).
    public let readFile: (String) -> String?
    /// Names of installed kernels (for the mirage firewall); `nil`: unknown, not checked.
    public let kernels: Set<String>?
    /// Runs steps inside the template; `nil`: those steps are left out (said in the plan's notes).
    public let executor: Executor?
    /// The template package installed into the template; `nil`: left out (said in the plan's notes).
    public let package: TemplatePackage?
    /// NetworkManager connections for the network qube.
    public let networks: [NetworkConnection]
    /// The manifest's `files:` trees, read from dom0.
    public let files: [QubeFiles]
    /// The folder standing for dom0's `/` whose update repositories `onion_updates` rewrites (`""`: dom0's
    /// own); `nil`: left out (said in the plan's notes).
    public let repositoryRoot: String?

    public init(
        backend: Backend, policyDirectory: String, readFile: @escaping (String) -> String?, kernels: Set<String>?,
        executor: Executor? = nil, package: TemplatePackage? = nil, networks: [NetworkConnection] = [],
        rpcDirectory: String? = nil, files: [QubeFiles] = [], repositoryRoot: String? = nil
    ) {
        self.files = files
        self.rpcDirectory = rpcDirectory
        self.repositoryRoot = repositoryRoot
        self.backend = backend
        self.policyDirectory = policyDirectory
        self.readFile = readFile
        self.kernels = kernels
        self.executor = executor
        self.package = package
        self.networks = networks
    }

    public var policyPath: String { policyDirectory + "/" + PolicyRules.fileName }

    public func plan(_ manifest: Manifest) throws -> Plan {
        let qubes = try backend.qubes()
        let names = Set(qubes.map(\.name))
        var manifest = manifest
        manifest.networkDevices = try networkDevices(manifest, existing: names)
        let templates = qubes.filter { $0.vmClass == .templateVM }.map(\.name)
        let desired = try DesiredState(manifest, templates: templates, qubes: names, kernels: kernels)
        var operations: [Operation] = []
        var blockers: [String] = []
        let keys = manifest.name(.keys)
        let macKey = try executor.flatMap { try MACSecretKey.current(manifest, keysExists: names.contains(keys), executor: $0) }
        let classes = Dictionary(qubes.map { ($0.name, $0.vmClass) }, uniquingKeysWith: { first, _ in first })
        // Power states as admin.vm.List gave them (dom0 is always running and has no network of its own).
        let running = Dictionary(
            qubes.filter { $0.state.isStarted && $0.vmClass != .adminVM }.map { ($0.name, $0.state.rawValue) },
            uniquingKeysWith: { first, _ in first })
        for qube in desired.qubes {
            let exists = classes[qube.name] != nil
            if let existingClass = classes[qube.name], existingClass != qube.vmClass {
                throw ProvisioningError(.qubeConflict, "qube \(qube.name) exists as \(existingClass.rawValue), but Liteqube needs a \(qube.vmClass.rawValue) there; rename it or choose another name in the manifest")
            }
            if !exists {
                if let source = qube.cloneOf {
                    operations.append(.cloneTemplate(source: source, name: qube.name, label: qube.label))
                } else {
                    operations.append(.createQube(name: qube.name, vmClass: qube.vmClass, template: qube.template, label: qube.label))
                }
            } else if let template = qube.template {
                let current = try backend.property("template", of: qube.name)
                if current.value != template { operations.append(.setProperty(qube: qube.name, name: "template", value: template)) }
            }
            for (name, value) in qube.properties {
                if exists, let current = try? backend.property(name, of: qube.name), !current.isDefault, current.value == value {
                    continue
                }
                operations.append(.setProperty(qube: qube.name, name: name, value: value))
            }
            for (name, value) in qube.features.sorted(by: { $0.key < $1.key })
            where !exists || (try? backend.feature(name, of: qube.name)) != value {
                operations.append(.setFeature(qube: qube.name, name: name, value: value))
            }
            operations += try volumeSteps(manifest, qube, exists: exists)
            if qube.role == .core {
                operations += try templateSteps(manifest, template: qube.name, exists: exists, macKey: macKey)
            }
            if let source = qube.devicesFrom, names.contains(source) {
                let devices = try backend.assignedDevices(of: source, deviceClass: "pci")
                if !devices.isEmpty, let state = running[source] {
                    // qubesd changes only the stored assignment of a running qube: it keeps the devices attached.
                    blockers.append(
                        "\(source) is \(state) and holds the PCI devices \(devices.map(\.port).joined(separator: ", ")) that move to \(qube.name), "
                            + "which could not start while \(source) keeps them attached: shut \(source) down "
                            + "(qvm-shutdown --wait \(source), after the qubes that use its network), then apply")
                }
                for device in devices {
                    var options: [String: String] = [:]
                    for option in device.options { options[option.name ?? ""] = option.value }
                    if manifest.noStrictReset { options["no-strict-reset"] = "True" }
                    operations.append(.moveDevice(from: source, to: qube.name, port: device.port, identity: device.identity, options: options))
                }
            }
        }
        if let executor {
            let entries = manifest.components.flatMap { $0.keysEntries(manifest, networks, macKey) }
            operations += try entrySteps(entries, in: keys, exists: names.contains(keys), executor)
        }
        for retired in desired.retired {
            let autostart = try backend.property("autostart", of: retired.name)
            if autostart.isDefault || autostart.value != "False" {
                operations.append(.setProperty(qube: retired.name, name: "autostart", value: "False"))
            }
            let rationale = "replaced by \(retired.replacement) (Liteqube)"
            if retired.prohibitStart, (try? backend.feature("prohibit-start", of: retired.name)) != rationale {
                operations.append(.setFeature(qube: retired.name, name: "prohibit-start", value: rationale))
            }
        }
        for (name, value) in desired.globals {
            let current = try backend.property(name, of: nil)
            guard current.isDefault || current.value != value else { continue }
            operations.append(.setProperty(qube: nil, name: name, value: value))
            if name == "default_netvm" {
                // qubesd moves running qubes on the default network at once, and refuses a netvm that is not running.
                let moved = try qubes.map(\.name).filter { try running[$0] != nil && backend.property("netvm", of: $0).isDefault }
                if !moved.isEmpty {
                    blockers.append(
                        "\(moved.joined(separator: ", ")) \(moved.count == 1 ? "is" : "are") running on the default network, "
                            + "which becomes \(value) (not running yet): shut \(moved.count == 1 ? "it" : "them") down, then apply")
                }
            }
        }
        var dom0Files = [(path: policyPath, content: desired.policy, mode: 0o644)]
        if let rpcDirectory {
            dom0Files += try Dom0Service.all(manifest).map { (rpcDirectory + "/" + $0.name, $0.content, 0o755) }
        }
        if manifest.includes(.network), manifest.onionUpdates, let repositoryRoot {
            // dom0's repositories as installed, on the onion mirror (docs/liteqube.md, "Onion updates").
            for path in OnionMirrors.dom0Files.map({ repositoryRoot + $0 }) {
                if let current = readFile(path) { dom0Files.append((path, OnionMirrors.dom0Repository(current), 0o644)) }
            }
        }
        for file in dom0Files where readFile(file.path) != file.content {
            operations.append(.writeFile(path: file.path, content: file.content, mode: file.mode))
        }
        for qube in Set(operations.compactMap(\.insideQube)) { try executor?.checkReaches(qube) }
        var notes = desired.notes
        if manifest.includes(.network), manifest.firmware == nil, manifest.effectiveFirmware.isEmpty {
            notes.append("no PCI network device of a maker lq knows firmware for is assigned to \(manifest.name(.net)) or the qube it replaces: no firmware is installed (name it in firmware:)")
        }
        if executor == nil {
            notes.append("steps inside \(manifest.name(.core)) (files, packages) are left out: give --in-qube")
        } else if operations.contains(where: { $0.insideQube != nil }) {
            notes.append("\(manifest.name(.core)) is shut down after its steps, so its root file system keeps them")
        }
        if manifest.includes(.network), manifest.onionUpdates, repositoryRoot == nil {
            notes.append("dom0's update repositories are left as they are (onion_updates needs dom0's files)")
        }
        if executor != nil, package == nil {
            notes.append("the template package \(TemplatePackage.name) is not installed into \(manifest.name(.core)): give --binaries")
        }
        return Plan(operations: operations, notes: notes, desired: desired, blockers: blockers)
    }

    /// The volumes of `qube` the manifest grows (docs/liteqube.md, "Customising"): a root volume only
    /// of a template (the others' comes from it), a private one not of a disposable; a size below the
    /// current one is refused, as Qubes cannot shrink a volume.
    private func volumeSteps(_ manifest: Manifest, _ qube: DesiredQube, exists: Bool) throws -> [Operation] {
        guard let sizes = manifest.volumeSizes[qube.role] else { return [] }
        var operations: [Operation] = []
        for volume in Manifest.Volume.allCases {
            guard let mib = sizes[volume] else { continue }
            let key = "\(volume.key).\(qube.role)"
            if volume == .root, qube.vmClass != .templateVM {
                throw ProvisioningError(.invalidArgument, "\(key): \(qube.name) is a \(qube.vmClass.rawValue), whose root volume is its template's", qube: qube.name)
            }
            if volume == .private, qube.vmClass == .dispVM {
                throw ProvisioningError(.invalidArgument, "\(key): \(qube.name) is a DispVM, whose private volume is its disposable template's", qube: qube.name)
            }
            let size = Int64(mib) << 20
            if exists {
                let current = try backend.volumeInfo(volume.rawValue, of: qube.name).first { $0.key == "size" }.flatMap { Int64($0.value) } ?? 0
                if current > size {
                    throw ProvisioningError(
                        .invalidArgument, "\(key): the \(volume.rawValue) volume is already \(current >> 20) MiB, and Qubes cannot shrink a volume",
                        qube: qube.name)
                }
                if current == size { continue }
            }
            operations.append(.resizeVolume(qube: qube.name, volume: volume.rawValue, size: size))
        }
        return operations
    }

    /// The identities of the PCI devices the network qube holds or takes over (docs/liteqube.md, "Customising").
    private func networkDevices(_ manifest: Manifest, existing: Set<String>) throws -> [String] {
        guard manifest.includes(.network) else { return [] }
        let holders = [manifest.replaced(.net), manifest.name(.net)].compactMap { $0 }.filter(existing.contains)
        return try holders.flatMap { try backend.assignedDevices(of: $0, deviceClass: "pci").map(\.identity) }
    }

    /// Files, folders, links, packages and commands the template lacks, in the catalog's order.
    private func templateSteps(_ manifest: Manifest, template: String, exists: Bool, macKey: MACSecretKey?) throws -> [Operation] {
        guard let executor else { return [] }
        var operations: [Operation] = []
        var entries: [TemplateEntry] = []
        func flushEntries() throws {
            operations += try entrySteps(entries, in: template, exists: exists, executor)
            entries = []
        }
        for step in try Overlay.templateSteps(manifest, package: package, networks: networks, macKey: macKey, files: files) {
            switch step {
            case .entry(let entry): entries.append(entry)
            case .packages(let wanted):
                try flushEntries()
                let present = exists ? try executor.installed(wanted, in: template) : []
                let missing = wanted.filter { !present.contains($0) }
                if !missing.isEmpty { operations.append(.installPackages(qube: template, packages: missing)) }
            case .command(let command):
                try flushEntries()
                let done = exists ? try executor.hasRun(command, in: template) : false
                if !done { operations.append(.runCommand(qube: template, command: command)) }
            }
        }
        try flushEntries()
        return operations
    }

    /// The entries `qube` does not hold yet (one inspection for all).
    private func entrySteps(_ entries: [TemplateEntry], in qube: String, exists: Bool, _ executor: Executor) throws -> [Operation] {
        guard !entries.isEmpty else { return [] }
        let found = exists ? try executor.inspect(entries.map(\.path), in: qube) : [:]
        return try entries.compactMap { entry in
            guard let current = found[entry.path] else { return .place(qube: qube, entry: entry) }
            if current.kind == .other {
                throw ProvisioningError(.unsupportedEntry, "\(entry.path) is neither a file, a folder nor a link; remove it first", qube: qube)
            }
            return current.satisfies(entry.expected) ? nil : .place(qube: qube, entry: entry)
        }
    }
}
