import Foundation
import LQCommon
import SystemLayer

/// Steps inside a qube (files and packages in debian-core): the real
/// executor runs `qvm-run --pass-io` from dom0; `FolderExecutor` applies
/// them to a folder standing for the template's root (tests, image preparation).
public protocol Executor: Sendable {
    /// What is at each of `paths`; absent paths are left out.
    func inspect(_ paths: [String], in qube: String) throws -> [String: FoundEntry]
    /// A regular file's bytes.
    func read(_ path: String, in qube: String) throws -> [UInt8]
    /// Puts `placement` at `path` (its folder exists), owned by the user and
    /// group `owner`, with `mode`; a file or symlink already there is replaced
    /// atomically, a folder there is kept and given the owner and mode.
    func place(_ placement: Placement, at path: String, owner: String, mode: Int, in qube: String) throws
    /// Removes a file or symlink, or a folder when it is empty (a folder with
    /// someone else's files stays).
    func remove(_ path: String, in qube: String) throws
    /// Which of `packages` are installed.
    func installed(_ packages: [String], in qube: String) throws -> Set<String>
    func install(_ packages: [String], in qube: String) throws
    func uninstall(_ packages: [String], in qube: String) throws
    /// Whether `command` has been run and its check still holds.
    func hasRun(_ command: TemplateCommand, in qube: String) throws -> Bool
    /// Runs `command` (it fails loudly rather than half do it).
    func run(_ command: TemplateCommand, in qube: String) throws
    /// Runs what undoes `command` (harmless when it never ran).
    func undo(_ command: TemplateCommand, in qube: String) throws
    /// Called once after apply or destroy changed things inside `qube`.
    func finish(_ qube: String) throws
    /// Throws when steps inside `qube` cannot run (checked when planning).
    func checkReaches(_ qube: String) throws
}

/// Applies steps to folders standing for qubes' root file systems: the
/// template's, and others' where given. Owner names resolve through the
/// folder's own `etc/passwd` and `etc/group` (`root` and `user` are 0 and
/// 1000 when it has none). Packages are recorded in
/// `<root>/var/lib/liteqube/packages` (one name a line) and commands in
/// `<root>/var/lib/liteqube/commands` (one command a line) for whoever builds
/// the image.
public struct FolderExecutor: Executor {
    /// The template's root.
    public let root: String
    /// The template's name; `nil`: every qube's steps go to `root`.
    public let template: String?
    /// Other qubes' roots by name.
    public let others: [String: String]

    public init(root: String, template: String? = nil, others: [String: String] = [:]) {
        self.root = root
        self.template = template
        self.others = others
    }

    /// The folder standing for `qube`'s root.
    private func folder(_ qube: String) throws -> String {
        if let other = others[qube] { return other }
        guard template == nil || template == qube else {
            throw ProvisioningError(.noExecutor, "no folder stands for \(qube): give --in-qube folder:DIR,\(qube)=DIR")
        }
        return root
    }

    private var files: SystemFileSystem { SystemFileSystem() }
    private var system: HostSystem { HostSystem() }

    /// Runs the calls of one step on `path`; a failed call is "<path>: <what>: <strerror>".
    private func attempt<Result>(_ what: String, _ path: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let error as SystemError {
            throw ProvisioningError(.ioFailure, what, path: path, cause: error)
        }
    }

    /// name → id from the passwd or group file of a root folder.
    private func ids(_ file: String, in base: String) -> [String: UInt32]? {
        guard let text = try? files.contents(of: base + file) else { return nil }
        var ids: [String: UInt32] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count > 2, let id = UInt32(fields[2]) { ids[String(fields[0])] = id }
        }
        return ids
    }

    private func id(of owner: String, in file: String, base: String) throws -> UInt32 {
        if let ids = ids(file, in: base) {
            guard let id = ids[owner] else { throw ProvisioningError(.unknownOwner, "no entry for '\(owner)'", path: base + file) }
            return id
        }
        switch owner {
        case "root": return 0
        case "user": return 1000
        default: throw ProvisioningError(.unknownOwner, "\(base + file) is missing, so owner '\(owner)' is unknown")
        }
    }

    /// uid → user name, from the folder's passwd (else the defaults of `id(of:)`).
    private func userNames(base: String) -> [UInt32: String] {
        guard let ids = ids("/etc/passwd", in: base) else { return [0: "root", 1000: "user"] }
        return Dictionary(ids.map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func inspect(_ paths: [String], in qube: String) throws -> [String: FoundEntry] {
        let base = try folder(qube)
        let users = userNames(base: base)
        var found: [String: FoundEntry] = [:]
        for path in paths {
            guard let info = try? files.info(of: base + path) else { continue }
            let mode = Int(info.permissions)
            let owner = users[info.owner] ?? String(info.owner)
            switch info.type {
            case .regular: found[path] = FoundEntry(kind: .file, owner: owner, mode: mode, detail: sha256Hex(try read(path, in: qube)))
            case .directory: found[path] = FoundEntry(kind: .directory, owner: owner, mode: mode, detail: "")
            case .symlink:
                let target = try attempt("cannot read the link", base + path) { try system.readLink(currentDirectory, Array((base + path).utf8)) }
                found[path] = FoundEntry(kind: .symlink, owner: owner, mode: mode, detail: String(decoding: target, as: UTF8.self))
            default: found[path] = FoundEntry(kind: .other, owner: owner, mode: mode, detail: "")
            }
        }
        return found
    }

    public func read(_ path: String, in qube: String) throws -> [UInt8] {
        let local = try folder(qube) + path
        return try attempt("cannot read", local) { try files.contents(of: local) }
    }

    /// Clears the immutable flag the boot guard sets on pinned files, so they can be replaced or removed.
    private func makeMutable(_ path: String) {
        guard let fd = try? system.openFile(currentDirectory, Array(path.utf8)) else { return }
        defer { system.close(fd) }
        if let flags = try? system.flags(fd), flags.contains(.immutable) { try? system.setFlags(fd, flags.subtracting(.immutable)) }
    }

    public func place(_ placement: Placement, at path: String, owner: String, mode: Int, in qube: String) throws {
        let base = try folder(qube)
        let uid = try id(of: owner, in: "/etc/passwd", base: base)
        let gid = try id(of: owner, in: "/etc/group", base: base)
        let target = base + path
        let name = Array(target.utf8)
        makeMutable(target)
        switch placement {
        case .file(let bytes):
            let attributes = FileAttributes(permissions: UInt32(mode), owner: uid, group: gid)
            _ = try attempt("cannot write", target) { try files.replaceFile(target, with: bytes, attributes: attributes) }
        case .directory:
            if let info = try? files.info(of: target), info.type != .directory { try? system.remove(currentDirectory, name, directory: false) }
            try attempt("cannot create the folder", target) {
                do throws(SystemError) {
                    try system.makeDirectory(currentDirectory, name)
                } catch {
                    guard error.isAlreadyThere else { throw error }
                }
            }
            try attempt("cannot set owner and mode", target) {
                let fd = try system.openDirectory(currentDirectory, name, followSymlink: false)
                defer { system.close(fd) }
                try system.setOwner(fd, owner: uid, group: gid)
                try system.setPermissions(fd, UInt32(mode))
            }
        case .symlink(let destination):
            let temporary = Array((target + ".lq-new").utf8)
            try? system.remove(currentDirectory, temporary, directory: false)
            try attempt("cannot create the link", target + ".lq-new") { try system.makeSymlink(Array(destination.utf8), currentDirectory, temporary) }
            try attempt("cannot replace", target) { try system.rename(currentDirectory, temporary, currentDirectory, name, replace: true) }
        }
    }

    public func remove(_ path: String, in qube: String) throws {
        let local = try folder(qube) + path
        guard let info = try? files.info(of: local) else { return }
        makeMutable(local)
        if info.type == .directory {
            try attempt("cannot remove the folder", local) {
                do throws(SystemError) {
                    try system.remove(currentDirectory, Array(local.utf8), directory: true)
                } catch {
                    // A folder that still holds someone else's files stays.
                    guard error.isNotEmpty else { throw error }
                }
            }
        } else {
            try attempt("cannot remove", local) { try system.remove(currentDirectory, Array(local.utf8), directory: false) }
        }
    }

    private static let packageList = "/var/lib/liteqube/packages"

    private static let commandList = "/var/lib/liteqube/commands"

    private func packages(in qube: String, list: String = Self.packageList) throws -> [String] {
        let base = try folder(qube)
        return (try? files.contents(of: base + list)).map {
            String(decoding: $0, as: UTF8.self).split(separator: "\n").map(String.init)
        } ?? []
    }

    private func savePackages(_ list: [String], in qube: String, as path: String = Self.packageList) throws {
        if list.isEmpty {
            try remove(path, in: qube)
            return try remove("/var/lib/liteqube", in: qube)
        }
        let folder = try folder(qube) + "/var/lib/liteqube"
        try attempt("cannot create the folder", folder) { try files.makeDirectories(folder) }
        try place(.file(Array(list.map { $0 + "\n" }.joined().utf8)), at: path, owner: "root", mode: 0o644, in: qube)
    }

    public func installed(_ packages: [String], in qube: String) throws -> Set<String> {
        Set(try self.packages(in: qube)).intersection(packages)
    }

    public func install(_ packages: [String], in qube: String) throws {
        var list = try self.packages(in: qube)
        for package in packages where !list.contains(package) { list.append(package) }
        try savePackages(list, in: qube)
    }

    public func uninstall(_ packages: [String], in qube: String) throws {
        try savePackages(try self.packages(in: qube).filter { !packages.contains($0) }, in: qube)
    }

    public func hasRun(_ command: TemplateCommand, in qube: String) throws -> Bool {
        try packages(in: qube, list: Self.commandList).contains(command.run)
    }

    public func run(_ command: TemplateCommand, in qube: String) throws {
        let list = try packages(in: qube, list: Self.commandList)
        if !list.contains(command.run) { try savePackages(list + [command.run], in: qube, as: Self.commandList) }
    }

    public func undo(_ command: TemplateCommand, in qube: String) throws {
        try savePackages(try packages(in: qube, list: Self.commandList).filter { $0 != command.run }, in: qube, as: Self.commandList)
    }

    /// Nothing to close: the folder is the file system.
    public func finish(_ qube: String) throws {}

    public func checkReaches(_ qube: String) throws { _ = try folder(qube) }
}

/// Runs template steps in the qube from dom0 with `qvm-run --pass-io -u root`.
public struct QvmRunExecutor: Executor {
    /// The `qvm-run` and `qvm-shutdown` programs.
    public let qvmRun: String
    public let qvmShutdown: String

    public init(qvmRun: String = "/usr/bin/qvm-run", qvmShutdown: String = "/usr/bin/qvm-shutdown") {
        self.qvmRun = qvmRun
        self.qvmShutdown = qvmShutdown
    }

    /// The most a command may print (a file read back from the template).
    static let outputLimit = 1 << 30

    /// Runs `command` in `qube`. Each command either takes a large input (a
    /// file) or prints a large output, never both, as the runner needs.
    private func run(_ qube: String, _ command: String, input: [UInt8] = []) throws -> ProcessOutput {
        let result = try Self.run(qvmRun, ["--pass-io", "--no-gui", "-u", "root", qube, command], input: input)
        guard result.output.count <= Self.outputLimit else { throw ProvisioningError(.commandFailed, "'\(command)' printed more than 1 GiB", qube: qube) }
        return result
    }

    private static func run(_ program: String, _ arguments: [String], input: [UInt8]) throws -> ProcessOutput {
        try runProgram(program, arguments, input: input, outputLimit: outputLimit)
    }

    private func checked(_ qube: String, _ command: String, input: [UInt8] = []) throws -> [UInt8] {
        let result = try run(qube, command, input: input)
        guard result.status == 0 else { throw ProvisioningError(.commandFailed, "'\(command)' failed with status \(result.status)", qube: qube) }
        return result.output
    }

    /// Single-quoted for sh.
    private func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Reads paths from stdin, one a line; prints `path TAB type TAB user TAB mode TAB detail`.
    private static let inspectScript = """
        while IFS= read -r p; do
            [ -e "$p" ] || [ -L "$p" ] || continue
            info=$(find "$p" -maxdepth 0 -printf '%y\\t%u\\t%m')
            case "$info" in
                f*) detail=$(sha256sum < "$p" | cut -d' ' -f1) ;;
                l*) detail=$(readlink "$p") ;;
                *) detail= ;;
            esac
            printf '%s\\t%s\\t%s\\n' "$p" "$info" "$detail"
        done
        """

    public func inspect(_ paths: [String], in qube: String) throws -> [String: FoundEntry] {
        let output = try checked(qube, Self.inspectScript, input: Array(paths.map { $0 + "\n" }.joined().utf8))
        var found: [String: FoundEntry] = [:]
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, let mode = Int(fields[3], radix: 8) else {
                throw ProvisioningError(.unexpectedAnswer, "unexpected answer while inspecting the template: '\(line)'", qube: qube)
            }
            let kind: FoundEntry.Kind = switch fields[1] { case "f": .file case "d": .directory case "l": .symlink default: .other }
            found[fields[0]] = FoundEntry(kind: kind, owner: fields[2], mode: mode, detail: fields[4])
        }
        return found
    }

    public func read(_ path: String, in qube: String) throws -> [UInt8] {
        try checked(qube, "cat \(quoted(path))")
    }

    public func place(_ placement: Placement, at path: String, owner: String, mode: Int, in qube: String) throws {
        let target = quoted(path)
        let temporary = quoted(path + ".lq-new")
        let ownership = "chown \(quoted(owner + ":" + owner))"
        let permissions = "chmod \(String(mode, radix: 8))"
        switch placement {
        case .file(let bytes):
            _ = try checked(
                qube,
                "cat > \(temporary) && \(ownership) \(temporary) && \(permissions) \(temporary) && sync \(temporary) && \(Self.makeMutable(target)) && mv -f \(temporary) \(target)",
                input: bytes)
        case .directory:
            _ = try checked(
                qube, "{ [ -d \(target) ] && [ ! -L \(target) ]; } || { rm -f \(target) && mkdir \(target); } && \(ownership) \(target) && \(permissions) \(target)")
        case .symlink(let destination):
            _ = try checked(qube, "ln -sfn \(quoted(destination)) \(temporary) && \(Self.makeMutable(target)) && mv -Tf \(temporary) \(target)")
        }
    }

    public func remove(_ path: String, in qube: String) throws {
        let target = quoted(path)
        _ = try checked(
            qube, "if [ -d \(target) ] && [ ! -L \(target) ]; then rmdir \(target) 2>/dev/null || true; else \(Self.makeMutable(target)) && rm -f \(target); fi")
    }

    /// Shell that clears the immutable flag the boot guard sets on pinned files (nothing when absent or a link).
    private static func makeMutable(_ quotedPath: String) -> String {
        "{ [ -L \(quotedPath) ] || [ ! -f \(quotedPath) ] || chattr -i \(quotedPath) 2>/dev/null || true; }"
    }

    public func installed(_ packages: [String], in qube: String) throws -> Set<String> {
        let result = try run(qube, "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' " + packages.map(quoted).joined(separator: " "))
        return Set(String(decoding: result.output, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count >= 2 && fields[1].hasPrefix("ii") ? String(fields[0]) : nil
        })
    }

    public func install(_ packages: [String], in qube: String) throws {
        _ = try checked(qube, "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends " + packages.map(quoted).joined(separator: " "))
    }

    public func uninstall(_ packages: [String], in qube: String) throws {
        _ = try checked(qube, "DEBIAN_FRONTEND=noninteractive apt-get purge -y " + packages.map(quoted).joined(separator: " "))
    }

    public func hasRun(_ command: TemplateCommand, in qube: String) throws -> Bool { try run(qube, command.check).status == 0 }

    public func run(_ command: TemplateCommand, in qube: String) throws { _ = try checked(qube, command.run) }

    public func undo(_ command: TemplateCommand, in qube: String) throws { _ = try checked(qube, command.undo) }

    /// Any qube: qvm-run starts it when needed.
    public func checkReaches(_ qube: String) throws {}

    /// Shuts the template down, so that its root file system keeps the changes
    /// and the qubes started from it next see them.
    public func finish(_ qube: String) throws {
        _ = try runProgram(qvmShutdown, ["--wait", "--timeout", "120", qube], failure: "\(qube): qvm-shutdown (shut it down before starting its qubes)")
    }
}

/// Runs a dom0 program (`qvm-run`, `qvm-shutdown`); not being able to start it is an error naming it,
/// and so is a non-zero status when `failure` names what was asked ("<failure> failed with status N").
func runProgram(
    _ program: String, _ arguments: [String], input: [UInt8] = [], outputLimit: Int = 1 << 16, failure: String? = nil
) throws -> ProcessOutput {
    let result: ProcessOutput
    do {
        result = try HostSystem().run(program, arguments, input: input, outputLimit: outputLimit)
    } catch {
        throw ProvisioningError(.commandFailed, "cannot run \(program)", cause: error)
    }
    if let failure, result.status != 0 { throw ProvisioningError(.commandFailed, "\(failure) failed with status \(result.status)") }
    return result
}
