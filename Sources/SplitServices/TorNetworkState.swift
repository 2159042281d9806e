import SystemLayer

/// Starting and stopping the Tor daemon.
public protocol TorControl: Sendable {
    /// Stops Tor and returns once it has stopped (its data folder is then safe to copy).
    func stop() throws(SplitError)
    /// Starts Tor (or leaves it running).
    func start() throws(SplitError)
}

/// Tor as Debian runs it: the systemd unit `tor@default.service`.
public struct SystemdTor: TorControl {
    public var unit: String
    public var system: any SystemCalls

    public init(unit: String = "tor@default.service", system: any SystemCalls = HostSystem()) {
        self.unit = unit
        self.system = system
    }

    public func stop() throws(SplitError) { try systemctl("stop") }
    public func start() throws(SplitError) { try systemctl("start") }

    private func systemctl(_ verb: String) throws(SplitError) {
        let result = try system.runProgram("/bin/systemctl", [verb, unit], outputLimit: 0)
        guard result.status == 0 else { throw SplitError(.system, "systemctl \(verb) \(unit): exit \(result.status)") }
    }
}

/// `liteqube.TorSetAP` in core-tor: one Tor state (entry guards, consensus) per network, so the guards
/// Tor uses on one network are never shown on another, and a network seen again gets its own back.
///
/// core-net names the network it joined; the name is one path component of qrexec's character set, at
/// most 64 bytes, not starting with `.` or `-` (`validateArgument`), so it cannot reach outside the
/// state folder. The current network is recorded in `<stateFolder>/ap`, each network's state kept in
/// `<stateFolder>/var-lib/<name>/`. Tor is stopped while its data folder is saved or replaced; copies
/// take only folders and regular files, never follow a symlink, and stop at `maxEntries` and
/// `maxBytes`. A saved state is replaced only once its new copy is complete, and the record of the
/// current network is removed before Tor's data folder is emptied, so an interruption at any step
/// never saves one network's state under another's name.
public struct TorNetworkState: Sendable {
    /// What a request did.
    public enum Change: Sendable, Hashable {
        /// The network was already the current one; Tor was (re)started.
        case kept(String)
        /// Tor's state was saved for `from` (if any) and restored, or started afresh, for `to`.
        case switched(from: String?, to: String)
        /// No network: Tor was stopped and the state of the one before (if any) saved.
        case stopped(String?)
    }

    /// Holds `ap` (the current network) and `var-lib/<network>/` (each network's state), on `/rw`.
    public var stateFolder: String
    /// Tor's own data folder (`DataDirectory`).
    public var dataFolder: String
    public var tor: any TorControl
    public var system: any SystemCalls
    /// The most entries and bytes one copy of Tor's state may have.
    public var maxEntries: Int
    public var maxBytes: Int

    public init(
        stateFolder: String = "/rw/config/tor", dataFolder: String = "/var/lib/tor", tor: any TorControl = SystemdTor(),
        system: any SystemCalls = HostSystem(), maxEntries: Int = 4096, maxBytes: Int = 256 << 20
    ) {
        self.stateFolder = stateFolder
        self.dataFolder = dataFolder
        self.tor = tor
        self.system = system
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
    }

    private static let currentFile = Array("ap".utf8)
    private static let savedFolder = Array("var-lib".utf8)

    /// Makes `argument` the current network (empty: none).
    public func select(_ argument: [UInt8]) throws(SplitError) -> Change {
        let requested = argument.isEmpty ? nil : try validateArgument(argument, what: "network name")
        let state = try open(stateFolder, create: true)
        defer { system.close(state) }
        let current = try currentNetwork()
        guard let network = requested else {
            try tor.stop()
            if let current { try save(current, state) }
            try remove(state, Self.currentFile)
            return .stopped(current)
        }
        if current == network {
            try tor.start()
            return .kept(network)
        }
        try tor.stop()
        if let current { try save(current, state) }
        try remove(state, Self.currentFile)
        let data = try open(dataFolder, create: false)
        defer { system.close(data) }
        try attempt(dataFolder) { () throws in try emptyFolder(data) }
        let saved = try savedFolder(state)
        defer { system.close(saved) }
        if let info = try attempt(stateFolder, { () throws in try system.status(saved, Array(network.utf8)) }),
            info.type == .directory
        {
            try attempt("\(stateFolder)/var-lib/\(network)") { () throws in
                let folder = try system.openDirectory(saved, Array(network.utf8), followSymlink: false)
                defer { system.close(folder) }
                var budget = Budget(entries: maxEntries, bytes: maxBytes)
                try copyContents(of: folder, into: data, budget: &budget)
            }
        }
        try SecureFile(system: system).replace(
            state, Self.currentFile, with: Array((network + "\n").utf8), owner: 0, group: 0, mode: 0o600,
            path: "\(stateFolder)/ap")
        try tor.start()
        return .switched(from: current, to: network)
    }

    /// Saves Tor's data folder as the current network's state (at shutdown, once Tor has stopped);
    /// the network saved, if one is current.
    public func saveCurrent() throws(SplitError) -> String? {
        let state = try open(stateFolder, create: true)
        defer { system.close(state) }
        guard let current = try currentNetwork() else { return nil }
        try save(current, state)
        return current
    }

    /// The recorded current network; a record that is not a valid name counts as none.
    private func currentNetwork() throws(SplitError) -> String? {
        let bytes: [UInt8]
        do {
            bytes = try SecureFile(system: system).read(stateFolder, [Self.currentFile], limit: 128).bytes
        } catch where error.code == .notFound {
            return nil
        }
        let line = bytes.last == 0x0A ? Array(bytes.dropLast()) : bytes
        return try? validateArgument(line, what: "network name")
    }

    /// Copies Tor's data folder into `var-lib/.<network>.new`, then puts it in place of `var-lib/<network>`.
    private func save(_ network: String, _ state: Descriptor) throws(SplitError) {
        let saved = try savedFolder(state)
        defer { system.close(saved) }
        let name = Array(network.utf8)
        let fresh = Array(".".utf8) + name + Array(".new".utf8)
        try attempt("\(stateFolder)/var-lib/\(network)") { () throws in
            try removeEntry(saved, fresh)
            let data = try system.openDirectory(currentDirectory, Array(dataFolder.utf8), followSymlink: true)
            defer { system.close(data) }
            let info = try system.status(data)
            try system.makeDirectory(saved, fresh)
            let copy = try system.openDirectory(saved, fresh, followSymlink: false)
            defer { system.close(copy) }
            try system.setOwner(copy, owner: info.owner, group: info.group)
            try system.setPermissions(copy, 0o700)
            var budget = Budget(entries: maxEntries, bytes: maxBytes)
            do {
                try copyContents(of: data, into: copy, budget: &budget)
            } catch {
                try? removeEntry(saved, fresh)
                throw error
            }
            try system.sync(copy)
            try removeEntry(saved, name)
            try system.rename(saved, fresh, saved, name, replace: false)
            try system.sync(saved)
        }
    }

    /// `<stateFolder>/var-lib`, made (0700 root) if missing.
    private func savedFolder(_ state: Descriptor) throws(SplitError) -> Descriptor {
        try attempt("\(stateFolder)/var-lib") { () throws in
            if try system.status(state, Self.savedFolder) == nil {
                try system.makeDirectory(state, Self.savedFolder)
                try system.setPermissions(state, Self.savedFolder, 0o700)
            }
            return try system.openDirectory(state, Self.savedFolder, followSymlink: false)
        }
    }

    private func open(_ path: String, create: Bool) throws(SplitError) -> Descriptor {
        try attempt(path) { () throws in
            let bytes = Array(path.utf8)
            if create, try system.status(currentDirectory, bytes) == nil {
                try system.makeDirectory(currentDirectory, bytes)
                try system.setPermissions(currentDirectory, bytes, 0o700)
            }
            return try system.openDirectory(currentDirectory, bytes, followSymlink: true)
        }
    }

    private func remove(_ dir: Descriptor, _ name: Name) throws(SplitError) {
        try attempt("\(stateFolder)/\(shown(name))") { () throws in try removeEntry(dir, name) }
    }

    /// What a copy may still take.
    private struct Budget {
        var entries: Int
        var bytes: Int
    }

    /// Copies the folders and regular files below `source` into `target` with their owners and modes;
    /// symlinks and special files are left out.
    private func copyContents(of source: Descriptor, into target: Descriptor, budget: inout Budget) throws {
        for name in try system.entries(source).sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let info = try system.status(source, name) else { continue }
            budget.entries -= 1
            guard budget.entries >= 0 else { throw SplitError(.tooLarge, "Tor's state has more than \(maxEntries) entries; refused") }
            switch info.type {
            case .directory:
                try system.makeDirectory(target, name)
                let from = try system.openDirectory(source, name, followSymlink: false)
                defer { system.close(from) }
                let to = try system.openDirectory(target, name, followSymlink: false)
                defer { system.close(to) }
                try system.setOwner(to, owner: info.owner, group: info.group)
                try system.setPermissions(to, info.permissions)
                try copyContents(of: from, into: to, budget: &budget)
            case .regular:
                let from = try system.openFile(source, name)
                defer { system.close(from) }
                let opened = try system.status(from)
                guard opened.isSameEntry(as: info) else { continue }
                let bytes = try system.read(from, limit: budget.bytes + 1)
                budget.bytes -= bytes.count
                guard budget.bytes >= 0 else { throw SplitError(.tooLarge, "Tor's state has more than \(maxBytes) bytes; refused") }
                let to = try system.createFile(target, name)
                defer { system.close(to) }
                try system.setOwner(to, owner: info.owner, group: info.group)
                try system.setPermissions(to, info.permissions)
                try system.write(to, bytes)
                try system.sync(to)
            default:
                continue
            }
        }
    }

    /// Removes an entry and, for a folder, everything below it, without following symlinks.
    private func removeEntry(_ dir: Descriptor, _ name: Name) throws(SystemError) {
        guard let info = try system.status(dir, name) else { return }
        if info.type == .directory {
            let folder = try system.openDirectory(dir, name, followSymlink: false)
            defer { system.close(folder) }
            try emptyFolder(folder)
        }
        try system.remove(dir, name, directory: info.type == .directory)
    }

    private func emptyFolder(_ folder: Descriptor) throws(SystemError) {
        for name in try system.entries(folder) { try removeEntry(folder, name) }
    }

    /// Runs `body`; a failed call becomes a refusal naming `path`.
    private func attempt<Value>(_ path: String, _ body: () throws -> Value) throws(SplitError) -> Value {
        do {
            return try body()
        } catch let error as SplitError {
            throw error
        } catch let error as SystemError {
            throw SecureFile.refusal(error, path)
        } catch {
            throw SplitError(.system, "\(path): \(error)")
        }
    }
}
