/// Bounds on untrusted policy input.
public struct PolicyLimits: Sendable, Hashable {
    /// Largest file read, in bytes.
    public var maxFileSize: Int
    /// Longest line, in bytes.
    public var maxLineLength: Int
    /// Deepest nesting of `!include`, `!include-dir`, `!include-service` and `!compat-4.0`.
    public var maxIncludeDepth: Int
    /// Most files loaded in total (includes counted each time).
    public var maxFiles: Int

    public init(maxFileSize: Int = 4 << 20, maxLineLength: Int = 64 << 10, maxIncludeDepth: Int = 16, maxFiles: Int = 10_000) {
        self.maxFileSize = maxFileSize
        self.maxLineLength = maxLineLength
        self.maxIncludeDepth = maxIncludeDepth
        self.maxFiles = maxFiles
    }
}

/// A loaded policy: every rule in load order (files sorted, includes expanded in place).
public struct Policy: Sendable, Hashable {
    public var rules: [Rule]

    public init(rules: [Rule]) {
        self.rules = rules
    }
}

/// The outcome of loading: the rules read and every error met. dom0 denies
/// every call when there is any error; lint reports them all.
public struct PolicyLoad: Sendable {
    public var policy: Policy
    public var errors: [PolicyError]
    /// The files read, in load order.
    public var files: [String]
}

/// Where the policy lives and how to read it (docs/qrexec-policy.md, "Policy files", "Directives",
/// "Compat 4.0").
public struct PolicyLoader: Sendable {
    /// dom0's policy directories, the runtime one first.
    public static let defaultDirectories = ["/run/qubes/policy.d", "/etc/qubes/policy.d"]
    /// What `!compat-4.0` reads in dom0.
    public static let defaultLegacyDirectory = "/etc/qubes-rpc/policy"

    /// Policy directories in priority order: for files of the same name, the first wins.
    public var directories: [String]
    /// Top-level files loaded besides those of `directories` (sorted with them by name).
    public var extraFiles: [String]
    public var legacyDirectory: String
    public var limits: PolicyLimits
    public var fileSystem: any PolicyFileSystem

    public init(directories: [String] = PolicyLoader.defaultDirectories, extraFiles: [String] = [],
                legacyDirectory: String = PolicyLoader.defaultLegacyDirectory, limits: PolicyLimits = PolicyLimits(),
                fileSystem: any PolicyFileSystem = SystemPolicyFiles()) {
        self.directories = directories
        self.extraFiles = extraFiles
        self.legacyDirectory = legacyDirectory
        self.limits = limits
        self.fileSystem = fileSystem
    }

    /// Loads everything, going on after errors.
    public func load() -> PolicyLoad {
        var run = LoadRun(loader: self)
        run.loadTopLevel()
        return PolicyLoad(policy: Policy(rules: run.rules), errors: run.errors, files: run.files)
    }

    /// The policy as dom0 would load it.
    /// - Throws: the first error; dom0 would then deny every call.
    public func policy() throws(PolicyError) -> Policy {
        let result = load()
        if let first = result.errors.first { throw first }
        return result.policy
    }

    /// Whether `name` is a policy file name qrexec accepts (`0-9 a-z _ . -`).
    public static func isValidFileName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }
}

/// One pass of the loader: the rules and errors so far.
private struct LoadRun {
    let loader: PolicyLoader
    var rules: [Rule] = []
    var errors: [PolicyError] = []
    var files: [String] = []
    /// The files being loaded, outermost first, to refuse an include cycle.
    var open: [String] = []

    var fileSystem: any PolicyFileSystem { loader.fileSystem }

    mutating func loadTopLevel() {
        var chosen: [(name: String, path: String, base: String)] = []
        // The names taken by an earlier directory, as bytes: a set, so 10 000 files cost no 10 000² comparisons.
        var taken = Set<[UInt8]>()
        for directory in loader.directories where fileSystem.kind(of: directory) == .directory {
            for (name, path) in policyFiles(in: directory) where taken.insert(Array(name.utf8)).inserted {
                chosen.append((name, path, directory))
            }
        }
        for path in loader.extraFiles {
            let name = String(path.split(separator: "/", omittingEmptySubsequences: false).last ?? "")
            chosen.append((name, path, parent(of: path)))
        }
        chosen.sort { $0.name.precedes($1.name) }
        for file in chosen { load(file.path, syntax: .current, base: file.base, depth: 0) }
    }

    /// The `.policy` files of a directory as (name, path), sorted; an error for a bad name.
    mutating func policyFiles(in directory: String) -> [(String, String)] {
        var result: [(String, String)] = []
        let names: [String]
        do {
            names = try fileSystem.entries(of: directory)
        } catch {
            errors.append(error)
            return []
        }
        for name in names where name.utf8.first != UInt8(ascii: ".") && name.hasSuffixBytes(".policy") {
            let path = join(directory, name)
            guard fileSystem.kind(of: path) == .file else { continue }
            guard PolicyLoader.isValidFileName(name) else {
                errors.append(PolicyError(.invalidFileName, "invalid filename: \(path)", file: path,
                                          expected: "a name of 0-9 a-z _ . - ending in .policy"))
                continue
            }
            result.append((name, path))
        }
        return result.sorted { $0.0.precedes($1.0) }
    }

    mutating func load(_ path: String, syntax: Syntax, base: String, depth: Int) {
        guard files.count < loader.limits.maxFiles else {
            errors.append(PolicyError(.limit, "more than \(loader.limits.maxFiles) policy files", file: path,
                                      expected: "at most \(loader.limits.maxFiles) files"))
            return
        }
        files.append(path)
        open.append(path)
        defer { open.removeLast() }
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.read(path, limit: loader.limits.maxFileSize)
        } catch {
            errors.append(error)
            return
        }
        let parsed = Parser.parse(bytes, file: path, syntax: syntax, limits: loader.limits)
        errors += parsed.errors
        for statement in parsed.statements {
            if case .rule(let rule) = statement.kind {
                rules.append(rule)
                continue
            }
            guard depth < loader.limits.maxIncludeDepth else {
                errors.append(PolicyError(.limit, "includes nested more than \(loader.limits.maxIncludeDepth) deep", file: path,
                                          line: statement.line, expected: "at most \(loader.limits.maxIncludeDepth) levels"))
                continue
            }
            switch statement.kind {
            case .rule: break
            case .include(let field):
                if let target = existing(field, .file, from: path, line: statement.line, base: base),
                   acyclic(target, field, from: path, line: statement.line) {
                    load(target, syntax: syntax, base: base, depth: depth + 1)
                }
            case .includeDir(let field):
                if let target = existing(field, .directory, from: path, line: statement.line, base: base) {
                    for (_, file) in policyFiles(in: target) where acyclic(file, field, from: path, line: statement.line) {
                        load(file, syntax: .current, base: base, depth: depth + 1)
                    }
                }
            case .includeService(let service, let argument, let field):
                if let target = existing(field, .file, from: path, line: statement.line, base: base),
                   acyclic(target, field, from: path, line: statement.line) {
                    load(target, syntax: .legacy(service: service, argument: argument), base: base, depth: depth + 1)
                }
            case .compat:
                loadLegacyDirectory(depth: depth + 1, from: path, line: statement.line)
            }
        }
    }

    /// The resolved path of an include if it is of the expected kind; an error otherwise.
    mutating func existing(_ field: Lines.Field, _ kind: PolicyEntryKind, from file: String, line: Int, base: String) -> String? {
        let target = field.text.utf8.first == UInt8(ascii: "/") ? field.text : join(base, field.text)
        guard fileSystem.kind(of: target) == kind else {
            errors.append(PolicyError(.missingInclude, "\(kind == .file ? "not a file" : "not a directory"): \(target)",
                                      file: file, line: line, column: field.column,
                                      expected: kind == .file ? "an existing file" : "an existing directory"))
            return nil
        }
        return target
    }

    /// Whether including `target` does not close a cycle; an error naming the cycle if it does
    /// (the reference recurses until Python gives up, docs/qrexec-policy.md, "Directives").
    mutating func acyclic(_ target: String, _ field: Lines.Field, from file: String, line: Int) -> Bool {
        guard let first = open.firstIndex(where: { $0.isBytes(target) }) else { return true }
        errors.append(PolicyError(.includeCycle, "include cycle: " + (open[first...] + [target]).joined(separator: " -> "),
                                  file: file, line: line, column: field.column, expected: "includes that do not loop"))
        return false
    }

    /// `!compat-4.0`: the old per-service files, argument files first, each
    /// followed by the two deny rules R4.0 implied; a legacy directory that
    /// does not exist refuses the file (docs/qrexec-policy.md, "Compat 4.0").
    mutating func loadLegacyDirectory(depth: Int, from file: String, line: Int) {
        let directory = loader.legacyDirectory
        guard fileSystem.kind(of: directory) == .directory else {
            errors.append(PolicyError(.missingInclude, "!compat-4.0: the legacy directory is missing: \(directory)", file: file,
                                      line: line, expected: "an existing directory"))
            return
        }
        let names: [String]
        do {
            names = try fileSystem.entries(of: directory)
        } catch {
            errors.append(error)
            return
        }
        let skipped = [".rpmsave", ".rpmnew", ".swp"]
        var entries: [(service: String, argument: String?, path: String)] = []
        for name in names where name.utf8.first != UInt8(ascii: ".") && !skipped.contains(where: { name.hasSuffixBytes($0) }) {
            let path = join(directory, name)
            guard fileSystem.kind(of: path) == .file, name.utf8.allSatisfy({ Names.isNameByte($0, plus: true) }) else { continue }
            let parts = name.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
            entries.append((String(parts[0]), parts.count == 2 ? "+" + parts[1] : nil, path))
        }
        entries.sort { left, right in
            if !left.service.isBytes(right.service) { return left.service.precedes(right.service) }
            switch (left.argument, right.argument) {
            case let (left?, right?): return left.precedes(right)
            case (.some, nil): return true
            default: return false
            }
        }
        for entry in entries {
            load(entry.path, syntax: .legacy(service: entry.service, argument: entry.argument ?? "*"), base: directory, depth: depth)
            guard let argument = entry.argument else { continue }
            for target in ["@anyvm", "@adminvm"] {
                switch RuleCheck.rule([entry.service, argument, "@anyvm", target, "deny"], origin: RuleOrigin(file: entry.path, line: nil)) {
                case .success(let rule): rules.append(rule)
                case .failure(let error): errors.append(PolicyError(.syntax, error.message, file: entry.path, expected: error.expected))
                }
            }
        }
    }

    func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return slash == path.utf8.startIndex ? "/" : String(path[..<slash])
    }
}

extension StringProtocol {
    /// Byte-wise suffix test.
    func hasSuffixBytes(_ suffix: String) -> Bool { utf8.reversed().starts(with: suffix.utf8.reversed()) }
}
