/// A policy file to generate: `NN-name.policy`, a comment header and typed rules (docs/qrexec-policy.md,
/// "Generator").
///
/// Every rule was checked when it was made (`Rule.init`), the name and header
/// here, and `PolicyGenerator.render` reads the text back with the parser,
/// so a generated file never makes dom0 deny every call.
public struct PolicyFile: Sendable, Hashable {
    /// The two-digit order prefix: below 90 to beat the defaults, below 35 to beat legacy files.
    public let priority: Int
    /// The name between the prefix and `.policy`.
    public let name: String
    /// Comment lines, written with a leading `# `.
    public let header: [String]
    public let rules: [Rule]

    /// - Throws: `PolicyError(.invalidFileName)` for a priority outside 0…99 or a
    ///   name outside `a-z 0-9 _ . -`; `.syntax` for a header line that is
    ///   not one line, or an Admin API allow or ask rule without `target=dom0`.
    public init(priority: Int, name: String, header: [String] = [], rules: [Rule]) throws(PolicyError) {
        self.priority = priority
        self.name = name
        self.header = header
        self.rules = rules
        guard (0...99).contains(priority), PolicyLoader.isValidFileName(name), name.utf8.first != UInt8(ascii: ".") else {
            throw PolicyError(.invalidFileName, "invalid policy file name: '\(name)' with priority \(priority)",
                              expected: "priority 0...99 and a name of a-z 0-9 _ . - not starting with '.'")
        }
        if let line = header.first(where: { $0.unicodeScalars.contains { $0.value == 0x0A || $0.value == 0x0D } }) {
            throw PolicyError(.syntax, "header line is not one line: '\(line)'", file: fileName, expected: "text without line breaks")
        }
        if let rule = rules.first(where: Self.isAdminRuleWithoutDom0Target) {
            throw PolicyError(.syntax, "Admin API rule without target=dom0: '\(rule)'", file: fileName,
                              expected: "target=dom0 on admin.* allow and ask rules")
        }
    }

    /// `NN-name.policy`.
    public var fileName: String { (priority < 10 ? "0" : "") + "\(priority)-\(name).policy" }

    /// The file's text: header comments, then one rule per line.
    public var text: String {
        (header.map { "# " + $0 } + rules.map(\.description)).map { $0 + "\n" }.joined()
    }

    /// An allow or ask rule for an `admin.*` service that does not redirect to dom0.
    static func isAdminRuleWithoutDom0Target(_ rule: Rule) -> Bool {
        guard let service = rule.service, service.utf8.starts(with: "admin.".utf8) else { return false }
        if case .deny = rule.action { return false }
        return rule.action.redirect != .adminVM
    }
}

/// Turns typed files into text that the parser is known to accept.
public enum PolicyGenerator {
    /// File name → text for each file, after reading every text back and
    /// checking it gives the same rules.
    /// - Throws: `PolicyError` if two files share a name or a text does not read back the same.
    public static func render(_ files: [PolicyFile]) throws(PolicyError) -> [String: String] {
        var result: [String: String] = [:]
        for file in files {
            guard result[file.fileName] == nil else {
                throw PolicyError(.invalidFileName, "two generated files named \(file.fileName)", expected: "distinct names")
            }
            let directory = "/generated"
            let path = directory + "/" + file.fileName
            let loaded = PolicyLoader(directories: [directory], legacyDirectory: "/nonexistent",
                                      fileSystem: MemoryPolicyFiles([path: file.text])).load()
            if let error = loaded.errors.first { throw error }
            guard loaded.policy.rules.map(\.description) == file.rules.map(\.description) else {
                throw PolicyError(.syntax, "generated text does not read back as its rules", file: file.fileName)
            }
            result[file.fileName] = file.text
        }
        return result
    }
}
