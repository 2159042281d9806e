/// The guard's switches (docs/boot-guard.md, "Settings"), read from `settings.<qube>` as `KEY=VALUE` data,
/// never executed.
///
/// Each line is empty, a `#` comment, or `KEY=VALUE` with an optional `export ` before the key and
/// the value optionally in single or double quotes (no escapes, no expansion). True is exactly
/// `True true Yes yes Y y 1`; false is `False false No no N n 0` or empty; anything else counts as
/// false and is reported. An unknown key or a malformed line is reported and ignored.
public struct Settings: Sendable, Hashable {
    /// If false, the guard does nothing.
    public var active = true
    /// Trace the run (reported; the library never logs).
    public var debug = false
    /// Power off on a mount failure; shut down one minute after a first boot (done by the caller).
    public var powerOff = false
    /// Move offending entries into `QUARANTINE`; if false they are deleted (docs/boot-guard.md, "Quarantine").
    public var quarantine = true
    /// Leave entries that no rule allows in place.
    public var allowRogue = false
    /// Create template entries that are missing (pass 2).
    public var deployMissing = true
    /// Remove the rules folder after the run.
    public var obscure = false

    public init() {}

    /// A problem in a settings file: the 1-based line and what was wrong (never a value that
    /// could be a secret: only keys and the accepted spellings are named).
    public struct Issue: Sendable, Hashable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// The field a settings key sets.
    static func field(_ key: String) -> WritableKeyPath<Settings, Bool>? {
        switch key {
        case "ACTIVE": \.active
        case "DEBUG": \.debug
        case "POWEROFF": \.powerOff
        case "QUARANTINE": \.quarantine
        case "ALLOW_ROGUE": \.allowRogue
        case "DEPLOY_MISSING": \.deployMissing
        case "OBSCURE": \.obscure
        default: nil
        }
    }

    /// Parses a settings file over the defaults; `issues` lists what was ignored or read as false.
    public static func parse(_ bytes: [UInt8]) -> (settings: Settings, issues: [Issue]) {
        var settings = Settings()
        var issues: [Issue] = []
        for (index, rawLine) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let line = String(decoding: rawLine, as: UTF8.self).trimmingSpaces()
            let number = index + 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            var assignment = Substring(line)
            if assignment.hasPrefix("export ") { assignment = assignment.dropFirst(7) }
            guard let equals = assignment.firstIndex(of: "=") else {
                issues.append(Issue(line: number, message: "not KEY=VALUE; ignored"))
                continue
            }
            let key = String(assignment[..<equals])
            guard let path = field(key) else {
                let shown = key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") } ? key : "?"
                issues.append(Issue(line: number, message: "unknown setting \(shown); ignored"))
                continue
            }
            var value = Substring(assignment[assignment.index(after: equals)...])
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = value.dropFirst().dropLast()
            }
            switch value {
            case "True", "true", "Yes", "yes", "Y", "y", "1": settings[keyPath: path] = true
            case "False", "false", "No", "no", "N", "n", "0", "": settings[keyPath: path] = false
            default:
                settings[keyPath: path] = false
                issues.append(Issue(line: number, message: "unknown value for \(key) (want Yes or No); read as No"))
            }
        }
        return (settings, issues)
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" }) else { return "" }
        let end = scalars.lastIndex(where: { $0 != " " && $0 != "\t" && $0 != "\r" })!
        return String(scalars[start...end])
    }
}
