import QubesStore
import Yams
import LQCommon

/// A manifest setting a component reads: its key, its default and how a
/// YAML value becomes a typed value (or a refusal naming the line).
public struct Setting<Value: Sendable & Hashable>: Sendable {
    public let key: String
    public let defaultValue: Value
    let read: @Sendable (Node, String) throws -> Value

    init(_ key: String, default defaultValue: Value, read: @escaping @Sendable (Node, String) throws -> Value) {
        self.key = key
        self.defaultValue = defaultValue
        self.read = read
    }

    var erased: AnySetting { AnySetting(key: key) { node in SettingValue(try read(node, key)) } }
}

extension Setting where Value == Bool {
    /// `true` or `false`.
    init(_ key: String, default defaultValue: Bool) {
        self.init(key, default: defaultValue) { node, key in
            guard let value = node.bool else { throw Manifest.Error(line: node.mark?.line, message: "\(key) must be true or false") }
            return value
        }
    }
}

extension Setting where Value == String? {
    /// Any text; absent means `nil`.
    static func text(_ key: String) -> Setting { Setting(key, default: nil) { node, key in try SettingReader.text(node, key) } }

    /// A text that `problem` passes (it names what is wrong, or returns `nil`); absent means `nil`.
    static func text(_ key: String, problem: @escaping @Sendable (String) -> String?) -> Setting {
        Setting(key, default: nil) { node, key in try SettingReader.text(node, key, problem: problem) }
    }
}

extension Setting where Value == String {
    /// A text that `problem` passes, `defaultValue` when absent.
    static func text(_ key: String, default defaultValue: String, problem: @escaping @Sendable (String) -> String?) -> Setting {
        Setting(key, default: defaultValue) { node, key in try SettingReader.text(node, key, problem: problem) }
    }
}

extension Setting where Value: RawRepresentable & CaseIterable, Value.RawValue == String {
    /// One of `Value`'s names.
    init(_ key: String, default defaultValue: Value) {
        self.init(key, default: defaultValue) { node, key in try SettingReader.choice(node, key) }
    }
}

/// An optional choice: absent means `nil` (a default worked out from other settings).
extension Setting {
    static func choice<Choice: RawRepresentable & CaseIterable & Sendable & Hashable>(_ key: String) -> Setting<Choice?>
    where Choice.RawValue == String, Value == Choice? {
        Setting<Choice?>(key, default: nil) { node, key in try SettingReader.choice(node, key) as Choice }
    }
}

/// A setting with its type erased, for the manifest parser.
struct AnySetting: Sendable {
    let key: String
    let read: @Sendable (Node) throws -> SettingValue
}

/// A setting's value in the manifest, of whichever type its setting has.
struct SettingValue: Sendable, Hashable {
    let value: any Sendable & Hashable
    init(_ value: any Sendable & Hashable) { self.value = value }
    static func == (lhs: SettingValue, rhs: SettingValue) -> Bool { AnyHashable(lhs.value) == AnyHashable(rhs.value) }
    func hash(into hasher: inout Hasher) { AnyHashable(value).hash(into: &hasher) }
}

/// Strict readers of YAML values; every refusal names the line and the key.
enum SettingReader {
    static func text(_ node: Node, _ key: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw Manifest.Error(line: node.mark?.line, message: "\(key) must be text") }
        return scalar.string
    }

    /// The text, refused with its line when `problem` names something wrong with it.
    static func text(_ node: Node, _ key: String, problem: (String) -> String?) throws -> String {
        let value = try text(node, key)
        if let problem = problem(value) { throw Manifest.Error(line: node.mark?.line, message: "\(key): '\(value)' \(problem)") }
        return value
    }

    static func qubeName(_ node: Node, _ key: String) throws -> String {
        let name = try text(node, key)
        if let problem = QubeName.problem(name) {
            throw Manifest.Error(line: node.mark?.line, message: "\(key): '\(name)' is not a valid qube name (\(problem))")
        }
        return name
    }

    static func choice<Value: RawRepresentable & CaseIterable>(_ node: Node, _ key: String) throws -> Value where Value.RawValue == String {
        let text = try text(node, key)
        guard let value = Value(rawValue: text) else {
            let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw Manifest.Error(line: node.mark?.line, message: "\(key) must be one of \(allowed), not '\(text)'")
        }
        return value
    }

    static func sequence(_ node: Node, _ key: String) throws -> [Node] {
        guard case .sequence(let items) = node else { throw Manifest.Error(line: node.mark?.line, message: "\(key) must be a list") }
        return Array(items)
    }

    /// A mapping whose keys must be in `allowed`.
    static func map(_ node: Node, _ key: String, allowed: Set<String>) throws -> [(String, Node)] {
        guard case .mapping(let mapping) = node else { throw Manifest.Error(line: node.mark?.line, message: "\(key) must be a mapping") }
        return try mapping.map { entry in
            guard let name = entry.key.string, allowed.contains(name) else {
                throw Manifest.Error(line: entry.key.mark?.line, message: "unknown \(key) entry '\(entry.key.string ?? "?")'")
            }
            return (name, entry.value)
        }
    }
}

extension Setting where Value == [String] {
    /// A list of texts, `minimum` to `limit` of them, each passed by `problem` (which names what is
    /// wrong, or returns `nil`); a refusal names the item's line.
    static func list(
        _ key: String, default defaultValue: [String], minimum: Int = 0, limit: Int, problem: @escaping @Sendable (String) -> String?
    ) -> Setting {
        Setting(key, default: defaultValue) { node, key in
            let items = try SettingReader.sequence(node, key)
            guard (minimum...limit).contains(items.count) else {
                throw Manifest.Error(line: node.mark?.line, message: "\(key) must hold \(minimum) to \(limit) entries, not \(items.count)")
            }
            return try items.map { item in try SettingReader.text(item, key, problem: problem) }
        }
    }
}
