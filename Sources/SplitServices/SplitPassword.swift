import BootProtect

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
public struct PinWriter: Sendable {
    public var rules: String
    public var keysQube: String
    public var owner: UInt32
    public var group: UInt32
    public var system: any SystemCalls

    public init(rules: String = "/etc/protect", keysQube: String = "core-keys", owner: UInt32, group: UInt32, system: any SystemCalls = HostSystem()) {
        self.rules = rules
        self.keysQube = keysQube
        self.owner = owner
        self.group = group
        self.system = system
    }

    /// `input` is `<qube>\n<sha256>\n<sha512>\n`. Returns the path written.
    public func write(_ input: [UInt8]) throws(SplitError) -> String {
        guard let newline = input.firstIndex(of: 0x0A) else { throw SplitError(.argument, "refused: want three lines: qube, sha256, sha512") }
        let qube = try validateCaller(String(decoding: input[..<newline], as: UTF8.self))
        guard isValidQubeName(keysQube) else { throw SplitError(.argument, "refused: '\(shown(Array(keysQube.utf8)))' is not a qube name") }
        let pin: ChecksumPin
        do {
            pin = try ChecksumPin(parsing: Array(input[(newline + 1)...]))
        } catch {
            throw SplitError(.format, "refused: \(error)")
        }
        let name = PasswordStore.fileName(qube)
        let folders: [(Name, UInt32, UInt32, UInt32)] = [
            (Array("checksum.\(keysQube)".utf8), 0, 0, 0o700), (Array("home".utf8), 0, 0, 0o755), (Array("user".utf8), owner, group, 0o700),
        ]
        let path = "\(rules)/checksum.\(keysQube)/home/user/\(name)"
        let files = SecureFile(system: system)
        try files.inFolder(rules, path) { root throws(SplitError) in
            var dir = root
            var opened: [Descriptor] = []
            defer { opened.forEach(system.close) }
            do {
                for (folder, folderOwner, folderGroup, mode) in folders {
                    if try system.status(dir, folder) == nil { try system.makeDirectory(dir, folder) }
                    dir = try system.openDirectory(dir, folder, followSymlink: false)
                    opened.append(dir)
                    try system.setOwner(dir, owner: folderOwner, group: folderGroup)
                    try system.setPermissions(dir, mode)
                }
            } catch let error as SystemError {
                throw SecureFile.refusal(error, path)
            } catch {
                throw SplitError(.system, "\(path): \(error)")
            }
            try files.replace(dir, Array(name.utf8), with: pin.fileBytes, owner: owner, group: group, mode: 0o600, path: path)
        }
        return path
    }
}

extension SecureFile {
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
}
