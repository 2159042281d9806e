import Foundation
import LQCommon
import QubesAdmin
import QubesStore
import SystemLayer

/// The write-ahead journal of `lq apply`: for every change, the value it
/// replaced, written and fsynced before the change is made.
public struct Journal: Codable, Sendable, Hashable {
    /// The value a change replaced.
    public enum Prior: Codable, Sendable, Hashable {
        /// The qube or file did not exist: undoing removes it.
        case absent
        /// A property: explicit value, or `nil` when it was at its default.
        case property(explicit: String?)
        /// A feature's value, `nil` when unset.
        case feature(String?)
        /// The PCI assignments of the device's original qube, in order.
        case devices([Device])
        /// A dom0 file's previous content.
        case file(String)
        /// What was at a template path (`nil`: nothing); a file's bytes are
        /// kept beside the journal, named by their sha256.
        case entry(FoundEntry?)
        /// Packages of the step that were installed before.
        case packages([String])
        /// A volume's size in bytes.
        case volumeSize(Int64)
    }

    /// One PCI assignment as recorded.
    public struct Device: Codable, Sendable, Hashable {
        public var port: String
        public var identity: String
        public var mode: AssignmentMode
        /// Options in order, as name/value pairs.
        public var options: [[String]]

        init(_ assignment: DeviceAssignment) {
            port = assignment.port
            identity = assignment.identity
            mode = assignment.mode
            options = assignment.options.map { [$0.name ?? "", $0.value] }
        }

        var assignment: DeviceAssignment {
            DeviceAssignment(
                backendDomain: "dom0", port: port, identity: identity, mode: mode,
                options: options.map { (name: $0.first, value: $0.count > 1 ? $0[1] : "") })
        }
    }

    /// A change about to be made (it may or may not have happened: undoing
    /// it is safe either way).
    public struct Entry: Codable, Sendable, Hashable {
        public var operation: Operation
        public var prior: Prior
    }

    public var entries: [Entry] = []

    public init() {}
}

/// What apply reports while it runs; throwing from the callback stops it.
public enum ApplyEvent: Sendable {
    case starting(index: Int, count: Int, Operation)
    case finished(index: Int, count: Int, Operation)
}

/// Runs plans and undoes them, keeping the journal.
public struct Applier {
    public let backend: Backend
    public let journalFile: StoreFile
    /// Policy files: read (nil when absent), write atomically, remove.
    public let files: Dom0Files
    /// Runs steps inside the template.
    public let executor: Executor?

    public init(backend: Backend, journalPath: String, files: Dom0Files = .system, executor: Executor? = nil) {
        self.backend = backend
        self.journalFile = StoreFile(path: journalPath)
        self.files = files
        self.executor = executor
    }

    private func requireExecutor() throws -> Executor {
        guard let executor else { throw ProvisioningError(.noExecutor, "this step runs inside a qube: give --in-qube") }
        return executor
    }

    /// The journal on disk (empty when there is none).
    public func loadJournal() throws -> Journal {
        guard let bytes = try? journalFile.read().bytes, !bytes.isEmpty else { return Journal() }
        do {
            return try JSONReader.parse(bytes, file: journalFile.path).decode(Journal.self)
        } catch {
            throw ProvisioningError(.invalidJournal, "journal \(journalFile.path) is not readable", cause: error)
        }
    }

    private func save(_ journal: Journal) throws {
        try journalFile.replace(with: try JSONValue(encoding: journal).canonicalBytes(), expecting: nil)
    }

    /// Applies `plan`, journaling each prior value before its change.
    public func apply(_ plan: Plan, progress: (ApplyEvent) throws -> Void = { _ in }) throws {
        if !plan.blockers.isEmpty { throw ProvisioningError(.blocked, "nothing applied: " + plan.blockers.joined(separator: "; ")) }
        var journal = try loadJournal()
        let count = plan.operations.count
        for (index, operation) in plan.operations.enumerated() {
            try progress(.starting(index: index, count: count, operation))
            // A run killed (or failed) after journaling an operation plans it again: the entry it wrote keeps
            // the value from before that run, and the journal ends as an uninterrupted run's (docs/crash-safety.md).
            if journal.entries.last?.operation != operation {
                journal.entries.append(Journal.Entry(operation: operation, prior: try prior(of: operation)))
                try save(journal)
            }
            try execute(operation)
            try progress(.finished(index: index, count: count, operation))
        }
        try finish(plan.operations)
    }

    /// Lets the executor close every qube `operations` changed inside.
    private func finish(_ operations: [Operation]) throws {
        var qubes: [String] = []
        for qube in operations.compactMap(\.insideQube) where !qubes.contains(qube) { qubes.append(qube) }
        for qube in qubes { try requireExecutor().finish(qube) }
    }

    /// What `operation` will replace.
    private func prior(of operation: Operation) throws -> Journal.Prior {
        switch operation {
        case .cloneTemplate, .createQube, .runCommand: return .absent
        case .setProperty(let qube, let name, _):
            // Explicit values always read back; a read that fails (offline
            // maxmem) is a computed default.
            guard let current = try? backend.property(name, of: qube), !current.isDefault else { return .property(explicit: nil) }
            return .property(explicit: current.value)
        case .setFeature(let qube, let name, _):
            return .feature(try? backend.feature(name, of: qube))
        case .moveDevice(let from, _, _, _, _):
            return .devices(try backend.assignedDevices(of: from, deviceClass: "pci").map(Journal.Device.init))
        case .writeFile(let path, _, _):
            return files.read(path).map(Journal.Prior.file) ?? .absent
        case .place(let qube, let entry):
            let executor = try requireExecutor()
            let found = try executor.inspect([entry.path], in: qube)[entry.path]
            if let found, found.kind == .file { try keep(try executor.read(entry.path, in: qube), as: found.detail) }
            return .entry(found)
        case .installPackages(let qube, let packages):
            return .packages(Array(try requireExecutor().installed(packages, in: qube)).sorted())
        case .resizeVolume(let qube, let volume, _):
            return .volumeSize(try backend.volumeInfo(volume, of: qube).first { $0.key == "size" }.flatMap { Int64($0.value) } ?? 0)
        }
    }

    private func execute(_ operation: Operation) throws {
        switch operation {
        case .cloneTemplate(let source, let name, let label):
            // One unit (offline: one save), so a kill never leaves a clone without its features or volumes,
            // which a run again would not add (docs/crash-safety.md).
            try backend.batch {
                try backend.create(Store.NewQube(vmClass: .templateVM, name: name, label: label))
                for feature in try backend.features(of: source) {
                    try backend.setFeature(feature, to: try backend.feature(feature, of: source), of: name)
                }
                for volume in ["root", "private"] { try backend.cloneVolume(volume, from: source, to: name) }
            }
        case .createQube(let name, let vmClass, let template, let label):
            try backend.create(Store.NewQube(vmClass: vmClass, name: name, label: label, template: template))
        case .setProperty(let qube, let name, let value):
            try backend.setProperty(name, of: qube, to: value)
        case .setFeature(let qube, let name, let value):
            try backend.setFeature(name, to: value, of: qube)
        case .moveDevice(let from, let to, let port, let identity, let options):
            let device = DeviceAssignment(
                backendDomain: "dom0", port: port, identity: identity, mode: .required,
                options: options.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
            try backend.batch {
                let assigned = try backend.assignedDevices(of: to, deviceClass: "pci")
                if !assigned.contains(where: { $0.sameDevice(as: device) }) { try backend.assign(device, deviceClass: "pci", to: to) }
                if try backend.assignedDevices(of: from, deviceClass: "pci").contains(where: { $0.sameDevice(as: device) }) {
                    try backend.unassign(device, deviceClass: "pci", from: from)
                }
            }
        case .writeFile(let path, let content, let mode):
            try files.write(path, content, mode)
        case .place(let qube, let entry):
            let placement: Placement
            switch entry.kind {
            case .file(let content): placement = .file(Array(content.utf8))
            case .binary(let source, let sha256):
                guard let bytes = try? SystemFileSystem().contents(of: source), sha256Hex(bytes) == sha256 else {
                    throw ProvisioningError(.changedSincePlan, "\(source) is missing or changed since the plan; plan again")
                }
                placement = .file(bytes)
            case .directory: placement = .directory
            case .symlink(let target): placement = .symlink(target: target)
            }
            try requireExecutor().place(placement, at: entry.path, owner: entry.owner, mode: entry.mode, in: qube)
        case .installPackages(let qube, let packages):
            try requireExecutor().install(packages, in: qube)
        case .runCommand(let qube, let command):
            try requireExecutor().run(command, in: qube)
        case .resizeVolume(let qube, let volume, let size):
            try backend.resizeVolume(volume, of: qube, to: size)
        }
    }

    /// Undoes everything the journal records, newest first, then removes it.
    public func destroy(progress: (Operation) throws -> Void = { _ in }) throws {
        var journal = try loadJournal()
        let created = Set(journal.entries.compactMap { entry -> String? in
            switch entry.operation {
            case .cloneTemplate(_, let name, _), .createQube(let name, _, _, _): name
            default: nil
            }
        })
        let existing = Set(try backend.qubes().map(\.name))
        // Qubes apply created are removed whole: nothing inside them is undone.
        let changedInside = journal.entries.map(\.operation).filter { operation in
            operation.insideQube.map { existing.contains($0) && !created.contains($0) } ?? false
        }
        while let entry = journal.entries.last {
            try progress(entry.operation)
            try undo(entry, created: created, existing: existing)
            journal.entries.removeLast()
            try save(journal)
        }
        try finish(changedInside)
        files.remove(journalFile.path)
        try? SystemFileSystem().removeTree(keptFolder)
    }

    /// Where replaced template files are kept until destroy.
    private var keptFolder: String { journalFile.path + ".d" }

    /// Keeps `bytes` (whose sha256 is `digest`) beside the journal, fsynced, before they are replaced.
    private func keep(_ bytes: [UInt8], as digest: String) throws {
        guard sha256Hex(bytes) == digest else { throw ProvisioningError(.changedSincePlan, "a template file changed while it was read; plan again") }
        try SystemFileSystem().makeDirectories(keptFolder)
        try StoreFile(path: keptFolder + "/" + digest, newFileMode: 0o600).replace(with: bytes, expecting: nil)
    }

    /// Bytes kept by `keep`.
    private func kept(_ digest: String) throws -> [UInt8] {
        guard let bytes = try? StoreFile(path: keptFolder + "/" + digest).read().bytes, sha256Hex(bytes) == digest else {
            throw ProvisioningError(.invalidJournal, "\(keptFolder)/\(digest): the kept copy of a replaced file is missing or damaged")
        }
        return bytes
    }

    private func undo(_ entry: Journal.Entry, created: Set<String>, existing: Set<String>) throws {
        switch (entry.operation, entry.prior) {
        case (.cloneTemplate(_, let name, _), _), (.createQube(let name, _, _, _), _):
            if try backend.qubes().contains(where: { $0.name == name }) { try backend.remove(name) }
        case (.setProperty(let qube, let name, _), .property(let explicit)):
            if let qube, created.contains(qube) || !existing.contains(qube) { return }
            if let explicit { try backend.setProperty(name, of: qube, to: explicit) } else { try backend.resetProperty(name, of: qube) }
        case (.setFeature(let qube, let name, _), .feature(let value)):
            if created.contains(qube) || !existing.contains(qube) { return }
            if let value {
                try backend.setFeature(name, to: value, of: qube)
            } else if (try? backend.feature(name, of: qube)) != nil {
                try backend.removeFeature(name, of: qube)
            }
        case (.moveDevice(let from, let to, let port, let identity, _), .devices(let original)):
            // One unit (offline: one save): killed between unassigning and reassigning, a run again
            // would no longer know the devices that were there (docs/crash-safety.md).
            try backend.batch { try undoMove(from: from, to: to, port: port, identity: identity, original: original) }
        case (.writeFile(let path, _, let mode), .file(let content)):
            try files.write(path, content, mode)
        case (.writeFile(let path, _, _), .absent):
            files.remove(path)
        case (.place(let qube, let entry), .entry(let found)):
            if created.contains(qube) || !existing.contains(qube) { return }
            let executor = try requireExecutor()
            guard let found else { return try executor.remove(entry.path, in: qube) }
            let placement: Placement
            switch found.kind {
            case .file: placement = .file(try kept(found.detail))
            case .directory: placement = .directory
            case .symlink: placement = .symlink(target: found.detail)
            case .other: throw ProvisioningError(.unsupportedEntry, "\(entry.path) was neither a file, a folder nor a link", qube: qube)
            }
            try executor.place(placement, at: entry.path, owner: found.owner, mode: found.mode, in: qube)
        case (.installPackages(let qube, let packages), .packages(let before)):
            if created.contains(qube) || !existing.contains(qube) { return }
            let added = packages.filter { !before.contains($0) }
            if !added.isEmpty { try requireExecutor().uninstall(added, in: qube) }
        case (.runCommand(let qube, let command), .absent):
            if created.contains(qube) || !existing.contains(qube) { return }
            try requireExecutor().undo(command, in: qube)
        case (.resizeVolume, .volumeSize):
            // A qube apply created goes whole; one that was there keeps the grown volume, as Qubes
            // cannot shrink one (docs/liteqube.md, "Customising").
            return
        default:
            throw ProvisioningError(.invalidJournal, "journal entry does not match its prior value: \(entry.operation.summary)")
        }
    }
}

extension Applier {
    /// Moves the device back from `to` and gives `from` its recorded assignments in their order: the
    /// device and those still there.
    fileprivate func undoMove(from: String, to: String, port: String, identity: String, original: [Journal.Device]) throws {
        let moved = DeviceAssignment(backendDomain: "dom0", port: port, identity: identity, mode: .required)
        if try backend.qubes().contains(where: { $0.name == to }),
            try backend.assignedDevices(of: to, deviceClass: "pci").contains(where: { $0.sameDevice(as: moved) })
        {
            try backend.unassign(moved, deviceClass: "pci", from: to)
        }
        let current = try backend.assignedDevices(of: from, deviceClass: "pci")
        let restored = original.map(\.assignment).filter { device in
            device.sameDevice(as: moved) || current.contains { $0.sameDevice(as: device) }
        }
        for device in current { try backend.unassign(device, deviceClass: "pci", from: from) }
        for device in restored { try backend.assign(device, deviceClass: "pci", to: from) }
        for device in current where !restored.contains(where: { $0.sameDevice(as: device) }) {
            try backend.assign(device, deviceClass: "pci", to: from)
        }
    }
}

/// Reading and writing dom0 files (atomically, fsynced).
public struct Dom0Files: Sendable {
    public var read: @Sendable (String) -> String?
    /// Path, content, mode.
    public var write: @Sendable (String, String, Int) throws -> Void
    public var remove: @Sendable (String) -> Void

    public init(
        read: @escaping @Sendable (String) -> String?, write: @escaping @Sendable (String, String, Int) throws -> Void,
        remove: @escaping @Sendable (String) -> Void
    ) {
        self.read = read
        self.write = write
        self.remove = remove
    }

    /// The real file system; writes go through a temp file, fsync and rename.
    public static let system = Dom0Files(
        read: { path in
            guard let bytes = try? StoreFile(path: path).read().bytes else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        },
        write: { path, content, mode in
            let file = StoreFile(path: path, newFileMode: UInt32(mode))
            try file.replace(with: Array(content.utf8), expecting: nil)
            guard chmod(path, mode_t(mode)) == 0 else { throw ProvisioningError(.ioFailure, "cannot set mode \(String(mode, radix: 8))", path: path) }
        },
        remove: { path in _ = unlink(path) })
}
