import LQCommon
import SystemLayer

/// `liteqube.SplitFile` in core-keys: hands a qube one file from its own folder, `<store>/<caller>/<name>`.
///
/// The caller comes from `QREXEC_REMOTE_DOMAIN` (passed in), the name from the service argument or
/// stdin. The name is one path component of qrexec's character set (`validateArgument`); the caller's
/// folder and the file are opened with `O_NOFOLLOW`, so a symlink planted in the store is refused, as are
/// special files, hard links and files over `maxSize`.
/// dom0 hears "<caller> requested file <name>".
public struct SplitFileServer: Sendable {
    public var store: String
    public var maxSize: Int
    public var context: ServiceContext

    public init(store: String = "/home/user", maxSize: Int = 16 << 20, context: ServiceContext = ServiceContext()) {
        self.store = store
        self.maxSize = maxSize
        self.context = context
    }

    /// The file's bytes, or why it was refused.
    public func serve(caller: String?, argument: [UInt8]) throws(SplitError) -> [UInt8] {
        let (caller, name) = try context.accept(caller: caller, argument: argument, what: "file name")
        return try SecureFile(system: context.system).read(store, [Array(caller.utf8), Array(name.utf8)], limit: maxSize).bytes
    }
}

/// `liteqube.SplitFileSave` in core-keys (called by dom0 only): stores a file that a qube gets with
/// SplitFile, `<store>/<qube>/<name>` (the folder 0700 and the file 0600, both `owner`), and returns its
/// pin, which dom0 hands to `PinWriter.writeFile` in the template. With a `subfolder` (`.ssh`: the split
/// SSH keys), the file is `<store>/<subfolder>/<qube>/<name>`, out of SplitFile's reach (a caller's name
/// never starts with `.`).
public struct FileSaver: Sendable {
    public var store: String
    public var subfolder: String?
    public var owner: UInt32
    public var group: UInt32
    public var maxSize: Int
    public var system: any SystemCalls

    public init(
        store: String = "/home/user", subfolder: String? = nil, owner: UInt32, group: UInt32, maxSize: Int = 16 << 20,
        system: any SystemCalls = HostSystem()
    ) {
        self.store = store
        self.subfolder = subfolder
        self.owner = owner
        self.group = group
        self.maxSize = maxSize
        self.system = system
    }

    /// `input` is `<qube>\n<name>\n<content>`: the content is every byte after the second newline.
    public func save(_ input: [UInt8]) throws(SplitError) -> ChecksumPin {
        let parts = input.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw SplitError(.argument, "refused: want a qube line, a file name line, then the content") }
        let qube = try validateCaller(String(decoding: parts[0], as: UTF8.self))
        let name = try validateArgument(Array(parts[1]), what: "file name")
        let content = Array(parts[2])
        guard content.count <= maxSize else { throw SplitError(.tooLarge, "refused: \(content.count) bytes, over the limit of \(maxSize)") }
        let folders = (subfolder.map { [$0] } ?? []) + [qube]
        try SecureFile(system: system).write(
            store, folders: folders.map { SecureFile.Folder(name: Array($0.utf8), owner: owner, group: group, mode: 0o700) }, name: Array(name.utf8),
            bytes: content, owner: owner, group: group, mode: 0o600, path: ([store] + folders + [name]).joined(separator: "/"))
        return ChecksumPin(of: content)
    }
}

/// The client side of the split services: `qrexec-client-vm <target> <service>+<argument>`.
public struct QrexecClient: Sendable {
    public var client: String
    public var system: any SystemCalls

    public init(client: String = "/usr/bin/qrexec-client-vm", system: any SystemCalls = HostSystem()) {
        self.client = client
        self.system = system
    }

    /// Calls the service and returns its stdout; a non-zero status or more than `limit` bytes is a refusal.
    public func call(_ target: String, _ service: String, argument: String, input: [UInt8] = [], limit: Int) throws(SplitError) -> [UInt8] {
        guard isValidQubeName(target) else { throw SplitError(.argument, "refused: '\(shown(Array(target.utf8)))' is not a qube name") }
        let result = try system.runProgram(client, [target, "\(service)+\(argument)"], input: input, outputLimit: limit)
        guard result.status == 0 else { throw SplitError(.remote, "\(target) refused \(service)+\(argument) (exit \(result.status))") }
        guard result.output.count <= limit else { throw SplitError(.tooLarge, "\(target): \(service)+\(argument) sent more than \(limit) bytes") }
        return result.output
    }
}

extension SystemCalls {
    /// Runs a program a service needs; not being able to start it is a `.system` refusal naming it.
    func runProgram(_ program: String, _ arguments: [String], input: [UInt8] = [], outputLimit: Int) throws(SplitError) -> ProcessOutput {
        do {
            return try run(program, arguments, input: input, outputLimit: outputLimit)
        } catch {
            throw SplitError(.system, "cannot run \(program): \(error)")
        }
    }
}
