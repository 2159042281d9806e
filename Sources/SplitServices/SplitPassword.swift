import LQCommon
import SystemLayer

/// `liteqube.SplitPassword` in core-keys: the password stored for a token in the caller's store.
///
/// The store `<store>/password-<caller>` must be a regular file with one link, owned by `owner`, with no
/// group or other access, in the strict `PasswordStore` format, and must match its checksum pin
/// `<pins>/password-<caller>` (sha256 and sha512 lines, the file BootProtect also verifies at boot).
/// dom0 hears "<caller> requested password <token>".
public struct SplitPasswordServer: Sendable {
    public var store: String
    public var pins: String
    public var owner: UInt32
    public var context: ServiceContext

    public init(
        store: String = "/home/user", pins: String = "/etc/protect/checksum.core-keys/home/user", owner: UInt32,
        context: ServiceContext = ServiceContext()
    ) {
        self.store = store
        self.pins = pins
        self.owner = owner
        self.context = context
    }

    public func serve(caller: String?, argument: [UInt8]) throws(SplitError) -> [UInt8] {
        let (caller, token) = try context.accept(caller: caller, argument: argument, what: "token")
        let name = PasswordStore.fileName(caller)
        let files = SecureFile(system: context.system)
        let (bytes, info) = try files.read(store, [Array(name.utf8)], limit: PasswordStore.maxSize)
        let path = "\(store)/\(name)"
        guard info.owner == owner else { throw SplitError(.unsafe, "\(path): owned by uid \(info.owner), not \(owner); refused") }
        guard info.permissions & 0o077 == 0 else {
            throw SplitError(.unsafe, "\(path): mode \(octal(info.permissions)) lets group or others in; want 0600; refused")
        }
        let pinBytes: [UInt8]
        do {
            pinBytes = try files.read(pins, [Array(name.utf8)], limit: 4096).bytes
        } catch where error.code == .notFound {
            throw SplitError(.pin, "\(path): no checksum pin \(pins)/\(name); refused")
        }
        let pin: ChecksumPin
        do {
            pin = try ChecksumPin(parsing: pinBytes)
        } catch {
            throw SplitError(.pin, "\(pins)/\(name): \(error); refused")
        }
        guard pin.matches(bytes) else { throw SplitError(.pin, "\(path): does not match its checksum pin \(pins)/\(name); refused") }
        let passwords = try PasswordStore.parse(bytes, name: path)
        guard let password = passwords.password(for: token) else {
            throw SplitError(.notFound, "\(path): no password for token \(token)")
        }
        return password
    }
}

/// `liteqube.SplitPasswordSave` in core-keys (called by dom0 only): stores a password and returns the
/// new pin, which dom0 hands to `PinWriter` in the template.
public struct PasswordSaver: Sendable {
    public var store: String
    public var owner: UInt32
    public var group: UInt32
    public var system: any SystemCalls

    public init(store: String = "/home/user", owner: UInt32, group: UInt32, system: any SystemCalls = HostSystem()) {
        self.store = store
        self.owner = owner
        self.group = group
        self.system = system
    }

    /// `input` is `<qube>\n<token>\n<password>` (one final newline is dropped; the password may hold any
    /// byte but NUL). Writes `password-<qube>` atomically (owner, 0600) and returns its pin.
    public func save(_ input: [UInt8]) throws(SplitError) -> ChecksumPin {
        let parts = input.split(separator: 0x0A, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw SplitError(.argument, "refused: want three lines: qube, token, password") }
        let qube = try validateCaller(String(decoding: parts[0], as: UTF8.self))
        let token = try validateArgument(Array(parts[1]), what: "token")
        var password = Array(parts[2])
        if password.last == 0x0A { password.removeLast() }
        guard !password.isEmpty, password.count <= PasswordStore.maxPassword, !password.contains(0) else {
            throw SplitError(.argument, "refused: the password must be 1 to \(PasswordStore.maxPassword) bytes without NUL")
        }
        let name = PasswordStore.fileName(qube)
        let path = "\(store)/\(name)"
        let files = SecureFile(system: system)
        var passwords = PasswordStore()
        do {
            passwords = try PasswordStore.parse(try files.read(store, [Array(name.utf8)], limit: PasswordStore.maxSize).bytes, name: path)
        } catch where error.code == .notFound {}
        passwords.set(token, password)
        let bytes = passwords.bytes
        try files.inFolder(store, path) { dir throws(SplitError) in
            try files.replace(dir, Array(name.utf8), with: bytes, owner: owner, group: group, mode: 0o600, path: path)
        }
        return ChecksumPin(of: bytes)
    }
}

/// `liteqube.SplitPasswordChecksum` in the template (called by dom0 only): writes the pin of a caller's
/// password store into `checksum.<keys>/home/user/password-<qube>`, so BootProtect verifies the store at
/// boot. The folders get the owner and modes the `/rw` folders must have (`home` 0755 root, `home/user`
/// 0700 user); the pin file says the store must be `owner` 0600 (data, so never executable).
/// File pins go under `subfolder` (`.ssh`) when the file was saved there (`FileSaver.subfolder`).
public struct PinWriter: Sendable {
    public var rules: String
    public var keysQube: String
    public var subfolder: String?
    public var owner: UInt32
    public var group: UInt32
    public var system: any SystemCalls

    public init(
        rules: String = "/etc/protect", keysQube: String = "core-keys", subfolder: String? = nil, owner: UInt32, group: UInt32,
        system: any SystemCalls = HostSystem()
    ) {
        self.rules = rules
        self.keysQube = keysQube
        self.subfolder = subfolder
        self.owner = owner
        self.group = group
        self.system = system
    }

    /// `input` is `<qube>\n<sha256>\n<sha512>\n`: the pin of `password-<qube>`. Returns the path written.
    public func write(_ input: [UInt8]) throws(SplitError) -> String {
        let (fields, pin) = try Self.fields(input, count: 1, what: "qube, sha256, sha512")
        return try write(qube: fields[0], file: nil, pin: pin)
    }

    /// `input` is `<qube>\n<name>\n<sha256>\n<sha512>\n`: the pin of the file `<qube>/<name>` that
    /// SplitFile serves. Returns the path written.
    public func writeFile(_ input: [UInt8]) throws(SplitError) -> String {
        let (fields, pin) = try Self.fields(input, count: 2, what: "qube, file name, sha256, sha512")
        return try write(qube: fields[0], file: try validateArgument(Array(fields[1].utf8), what: "file name"), pin: pin)
    }

    /// The first `count` lines, the first a qube name, then the pin.
    private static func fields(_ input: [UInt8], count: Int, what: String) throws(SplitError) -> ([String], ChecksumPin) {
        let lines = input.split(separator: 0x0A, maxSplits: count, omittingEmptySubsequences: false)
        guard lines.count == count + 1 else { throw SplitError(.argument, "refused: want the lines \(what)") }
        let fields = lines.prefix(count).map { String(decoding: $0, as: UTF8.self) }
        _ = try validateCaller(fields[0])
        do {
            return (fields, try ChecksumPin(parsing: Array(lines[count])))
        } catch {
            throw SplitError(.format, "refused: \(error)")
        }
    }

    /// Writes the pin of `password-<qube>` (no `file`) or of `<qube>/<file>`.
    private func write(qube: String, file: String?, pin: ChecksumPin) throws(SplitError) -> String {
        guard isValidQubeName(keysQube) else { throw SplitError(.argument, "refused: '\(shown(Array(keysQube.utf8)))' is not a qube name") }
        var folders: [SecureFile.Folder] = [
            SecureFile.Folder(name: Array("checksum.\(keysQube)".utf8), owner: 0, group: 0, mode: 0o700),
            SecureFile.Folder(name: Array("home".utf8), owner: 0, group: 0, mode: 0o755),
            SecureFile.Folder(name: Array("user".utf8), owner: owner, group: group, mode: 0o700),
        ]
        var relative = "checksum.\(keysQube)/home/user/"
        let name: String
        if let file {
            let names = (subfolder.map { [$0] } ?? []) + [qube]
            folders += names.map { SecureFile.Folder(name: Array($0.utf8), owner: owner, group: group, mode: 0o700) }
            relative += (names + [file]).joined(separator: "/")
            name = file
        } else {
            name = PasswordStore.fileName(qube)
            relative += name
        }
        let path = "\(rules)/\(relative)"
        try SecureFile(system: system).write(rules, folders: folders, name: Array(name.utf8), bytes: pin.fileBytes, owner: owner, group: group, mode: 0o600, path: path)
        return path
    }
}

extension SecureFile {
    /// A folder on the way to a file, made if missing and given its owner, group and mode.
    struct Folder {
        var name: Name
        var owner: UInt32
        var group: UInt32
        var mode: UInt32
    }

    /// Runs `body` with the folder `root` open (trusted: it may be a symlink).
    func inFolder(_ root: String, _ path: String, _ body: (Descriptor) throws(SplitError) -> Void) throws(SplitError) {
        let dir: Descriptor
        do {
            dir = try system.openDirectory(currentDirectory, Array(root.utf8), followSymlink: true)
        } catch {
            throw Self.refusal(error, root)
        }
        defer { system.close(dir) }
        try body(dir)
    }

    /// Replaces `root/<folders…>/name` atomically (`replace`); each folder below `root` is opened without
    /// following a symlink, made when missing, and given its owner, group and mode.
    func write(
        _ root: String, folders: [Folder], name: Name, bytes: [UInt8], owner: UInt32, group: UInt32, mode: UInt32, path: String
    ) throws(SplitError) {
        try inFolder(root, path) { top throws(SplitError) in
            var dir = top
            var opened: [Descriptor] = []
            defer { opened.forEach(system.close) }
            do {
                for folder in folders {
                    if try system.status(dir, folder.name) == nil { try system.makeDirectory(dir, folder.name) }
                    dir = try system.openDirectory(dir, folder.name, followSymlink: false)
                    opened.append(dir)
                    try system.setOwner(dir, owner: folder.owner, group: folder.group)
                    try system.setPermissions(dir, folder.mode)
                }
            } catch let error as SystemError {
                throw SecureFile.refusal(error, path)
            } catch {
                throw SplitError(.system, "\(path): \(error)")
            }
            try replace(dir, name, with: bytes, owner: owner, group: group, mode: mode, path: path)
        }
    }
}
