import LQCommon
import QubesStore
import Yams

/// What the user asks for: `liteqube.yaml`. Every setting has a default, so
/// `components: [base, network, usb]` alone is complete. Settings belong to
/// the components that read them (their files declare the keys); the
/// manifest itself knows only the list of components and the per-role
/// `names:`, `memory:` and `labels:`.
public struct Manifest: Sendable, Hashable {
    /// Labels by kind of qube.
    public enum LabelKind: String, Sendable, Hashable, CaseIterable {
        case template, workers
    }

    /// The components a manifest may name.
    public var catalog: Catalog
    /// The components asked for, in catalog order.
    public var components: [Component]
    /// Qube names by role.
    public var names: [Role: String] = [:]
    public var labels: [LabelKind: String] = [:]
    /// Memory (MiB) by role, overriding the profile.
    public var memory: [Role: Int] = [:]
    /// The qubes the roles' qubes replace, where not the defaults (`sys_names:`).
    public var sysNames: [Role: String] = [:]
    /// The boot guard's switches by role, for its `settings.<qube>` (`settings:`).
    public var guardSettings: [Role: [GuardSwitch: Bool]] = [:]
    /// Folder trees laid into the roles' qubes (`files:`).
    public var files: [Role: FilesSource] = [:]
    /// Volume sizes (MiB) by role and volume, grown to by apply (`root_size:`, `private_size:`).
    public var volumeSizes: [Role: [Volume: Int]] = [:]
    /// The components' settings, by key.
    var values: [String: SettingValue] = [:]
    /// The identities of the PCI devices the network qube holds or takes over, as the planner
    /// found them in the store (the default of `firmware:`).
    var networkDevices: [String] = []

    public init(components: [Component] = [.base, .network, .usb], catalog: Catalog = .liteqube) {
        self.catalog = catalog
        self.components = catalog.components.filter(components.contains)
    }

    /// A component's setting (its default when the manifest does not set it).
    public subscript<Value>(setting: Setting<Value>) -> Value {
        get { values[setting.key]?.value as? Value ?? setting.defaultValue }
        set { values[setting.key] = SettingValue(newValue) }
    }

    public func includes(_ component: Component) -> Bool { components.contains(component) }

    /// The qube name of a role.
    public func name(_ role: Role) -> String { names[role] ?? catalog.spec(role)?.defaultName ?? role.rawValue }

    /// The qube a role's qube replaces (`sys-net`, …; `nil`: none).
    public func replaced(_ role: Role) -> String? { sysNames[role] ?? catalog.spec(role)?.replaces }

    public func label(_ kind: LabelKind) -> String { labels[kind] ?? (kind == .template ? "black" : "gray") }

    /// The memory (MiB) a role's qube gets.
    public func memory(of role: Role) -> Int { memory[role] ?? catalog.spec(role)?.memory(self) ?? 400 }

    /// Why a manifest is not valid, and where: the manifest's file (when the
    /// parser was given its name) and line.
    public struct Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        public var location: SourceLocation?
        public var message: String

        init(line: Int?, message: String) {
            self.location = line.map { SourceLocation(line: $0) }
            self.message = message
        }

        /// `file: line N: message`, leaving out what is not known.
        public var description: String {
            (location?.file.map { "\($0): " } ?? "") + (location?.line.map { "line \($0): " } ?? "") + message
        }
    }

    /// Parses `liteqube.yaml`; `file` names it in the errors.
    public static func parse(_ text: String, file: String? = nil, catalog: Catalog = .liteqube) throws -> Manifest {
        do {
            return try read(text, catalog: catalog)
        } catch var error as Error where file != nil {
            error.location = SourceLocation(file: file, line: error.location?.line)
            throw error
        }
    }

    private static func read(_ text: String, catalog: Catalog) throws -> Manifest {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw Error(line: nil, message: "not valid YAML: \(error)")
        }
        guard let root, case .mapping(let mapping) = root else {
            throw Error(line: root?.mark?.line, message: "the manifest must be a mapping of settings")
        }
        let settings = Dictionary(catalog.components.flatMap(\.settings).map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let roles = Set(catalog.roles.map(\.role.rawValue))
        var manifest = Manifest(components: [], catalog: catalog)
        var sawComponents = false
        var sysNameLines: [Role: Int?] = [:]
        for (keyNode, value) in mapping {
            let line = keyNode.mark?.line
            guard let key = keyNode.string else { throw Error(line: line, message: "keys must be text") }
            switch key {
            case "components":
                sawComponents = true
                let named = try SettingReader.sequence(value, key).map { item in
                    guard let text = item.string, let component = catalog.component(text) else {
                        let known = catalog.components.map(\.id).joined(separator: ", ")
                        throw Error(line: item.mark?.line, message: "unknown component '\(item.string ?? "?")' (known: \(known))")
                    }
                    return component
                }
                manifest.components = catalog.components.filter(named.contains)
            case "names":
                for (role, name) in try SettingReader.map(value, key, allowed: roles) {
                    manifest.names[Role(rawValue: role)] = try SettingReader.qubeName(name, "names.\(role)")
                }
            case "sys_names":
                let replacing = Set(catalog.roles.filter { $0.replaces != nil }.map(\.role.rawValue))
                for (role, name) in try SettingReader.map(value, key, allowed: replacing) {
                    manifest.sysNames[Role(rawValue: role)] = try SettingReader.qubeName(name, "sys_names.\(role)")
                    sysNameLines[Role(rawValue: role)] = name.mark?.line
                }
            case "labels":
                for (kind, label) in try SettingReader.map(value, key, allowed: Set(LabelKind.allCases.map(\.rawValue))) {
                    manifest.labels[LabelKind(rawValue: kind)!] = try SettingReader.text(label, "labels.\(kind)")
                }
            case "memory":
                for (role, amount) in try SettingReader.map(value, key, allowed: roles) {
                    guard let text = amount.string, let mib = Int(text), mib > 0, mib <= 1 << 20 else {
                        throw Error(line: amount.mark?.line, message: "memory.\(role) must be a positive number of MiB")
                    }
                    manifest.memory[Role(rawValue: role)] = mib
                }
            default:
                if try manifest.readQubeKey(key, value, roles: roles) { continue }
                guard let setting = settings[key] else { throw Error(line: line, message: "unknown setting '\(key)'") }
                manifest.values[key] = try setting.read(value)
            }
        }
        for (role, old) in manifest.sysNames where catalog.roles.contains(where: { manifest.name($0.role) == old }) {
            throw Error(line: sysNameLines[role] ?? nil, message: "sys_names.\(role): '\(old)' is one of Liteqube's own qubes, which cannot replace itself")
        }
        guard sawComponents else { throw Error(line: root.mark?.line, message: "'components' is required") }
        guard manifest.includes(.base) else {
            throw Error(line: nil, message: "component 'base' is required (everything else builds on it)")
        }
        return manifest
    }
}
