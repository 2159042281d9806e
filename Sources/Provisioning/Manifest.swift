import QubesStore
import Yams

/// What the user asks for: `liteqube.yaml`. Every setting has a default, so
/// `components: [base, network, usb]` alone is complete.
public struct Manifest: Sendable, Hashable {
    public enum Component: String, Sendable, Hashable, CaseIterable {
        case base, network, usb
    }

    public enum Profile: String, Sendable, Hashable, CaseIterable {
        /// The sizes of the spec's master table.
        case `default`
        /// The sizes seen running (mirage firewalls).
        case lowMemory = "low-memory"
    }

    public enum Firewall: String, Sendable, Hashable, CaseIterable {
        case linux, mirage
    }

    public var components: [Component] = [.base]
    /// The template debian-core is cloned from; `nil`: `debian-13-minimal`,
    /// else the newest installed `debian-N-minimal`.
    public var baseTemplate: String?
    public var profile: Profile = .default
    /// Qube names by role (`core`, `dvm`, `xorg`, `keys`, `net`, `tor`, `update`, `usb`, `fw-net`, `fw-tor`, `fw-base`, `fw-dvm`).
    public var names: [String: String] = [:]
    /// Labels by role: `template` and `workers`.
    public var labels: [String: String] = [:]
    /// Memory (MiB) by qube role, overriding the profile.
    public var memory: [String: Int] = [:]
    /// core-net is a named disposable (else an AppVM of debian-core).
    public var disposableNetVM = true
    /// `nil`: linux for the default profile, mirage for low-memory.
    public var firewall: Firewall?
    public var usbInputDevices = true
    /// Add `no-strict-reset=True` to moved PCI devices.
    public var noStrictReset = true
    /// A dom0 folder of NetworkManager keyfiles for the network qube (for
    /// example copied out of sys-net); relative to the manifest's folder.
    public var networks: String?

    public init(components: [Component] = [.base, .network, .usb]) {
        self.components = components
    }

    /// The roles and their default names.
    public static let defaultNames: [String: String] = [
        "core": "debian-core", "dvm": "core-dvm", "xorg": "core-xorg", "keys": "core-keys", "net": "core-net",
        "tor": "core-tor", "update": "core-update", "usb": "core-usb", "fw-net": "fw-net", "fw-tor": "fw-tor",
        "fw-base": "fw-base", "fw-dvm": "fw-dvm",
    ]

    /// The qube name of a role.
    public func name(_ role: String) -> String { names[role] ?? Self.defaultNames[role] ?? role }

    public func label(_ role: String) -> String { labels[role] ?? (role == "template" ? "black" : "gray") }

    public var effectiveFirewall: Firewall { firewall ?? (profile == .lowMemory ? .mirage : .linux) }

    /// Why a manifest is not valid: the message names the line.
    public struct Error: Swift.Error, Sendable, Hashable, CustomStringConvertible {
        public var line: Int?
        public var message: String
        public var description: String { (line.map { "line \($0): " } ?? "") + message }
    }

    /// Parses `liteqube.yaml`.
    public static func parse(_ text: String) throws -> Manifest {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw Error(line: nil, message: "not valid YAML: \(error)")
        }
        guard let root, case .mapping(let mapping) = root else {
            throw Error(line: root?.mark?.line, message: "the manifest must be a mapping of settings")
        }
        var manifest = Manifest(components: [])
        var sawComponents = false
        for (keyNode, value) in mapping {
            let line = keyNode.mark?.line
            guard let key = keyNode.string else { throw Error(line: line, message: "keys must be text") }
            switch key {
            case "components":
                sawComponents = true
                manifest.components = try sequence(value, key).map { item in
                    guard let text = item.string, let component = Component(rawValue: text) else {
                        throw Error(line: item.mark?.line, message: "unknown component '\(item.string ?? "?")' (known: base, network, usb)")
                    }
                    return component
                }
            case "base_template": manifest.baseTemplate = try string(value, key)
            case "profile": manifest.profile = try choice(value, key)
            case "firewall": manifest.firewall = try choice(value, key)
            case "disposable_netvm": manifest.disposableNetVM = try bool(value, key)
            case "usb_input_devices": manifest.usbInputDevices = try bool(value, key)
            case "no_strict_reset": manifest.noStrictReset = try bool(value, key)
            case "networks": manifest.networks = try string(value, key)
            case "names":
                for (role, name) in try map(value, key, allowed: Set(defaultNames.keys)) {
                    manifest.names[role] = try qubeName(name, "names.\(role)")
                }
            case "labels":
                for (role, label) in try map(value, key, allowed: ["template", "workers"]) {
                    manifest.labels[role] = try string(label, "labels.\(role)")
                }
            case "memory":
                for (role, amount) in try map(value, key, allowed: Set(defaultNames.keys)) {
                    guard let text = amount.string, let mib = Int(text), mib > 0, mib <= 1 << 20 else {
                        throw Error(line: amount.mark?.line, message: "memory.\(role) must be a positive number of MiB")
                    }
                    manifest.memory[role] = mib
                }
            default:
                throw Error(line: line, message: "unknown setting '\(key)'")
            }
        }
        guard sawComponents else { throw Error(line: root.mark?.line, message: "'components' is required") }
        guard manifest.components.contains(.base) else {
            throw Error(line: nil, message: "component 'base' is required (everything else builds on it)")
        }
        return manifest
    }

    private static func string(_ node: Node, _ key: String) throws -> String {
        guard case .scalar(let scalar) = node else { throw Error(line: node.mark?.line, message: "\(key) must be text") }
        return scalar.string
    }

    private static func qubeName(_ node: Node, _ key: String) throws -> String {
        let name = try string(node, key)
        if let problem = QubeName.problem(name) {
            throw Error(line: node.mark?.line, message: "\(key): '\(name)' is not a valid qube name (\(problem))")
        }
        return name
    }

    private static func bool(_ node: Node, _ key: String) throws -> Bool {
        guard let value = node.bool else { throw Error(line: node.mark?.line, message: "\(key) must be true or false") }
        return value
    }

    private static func choice<Value: RawRepresentable & CaseIterable>(_ node: Node, _ key: String) throws -> Value where Value.RawValue == String {
        let text = try string(node, key)
        guard let value = Value(rawValue: text) else {
            let allowed = Value.allCases.map(\.rawValue).joined(separator: ", ")
            throw Error(line: node.mark?.line, message: "\(key) must be one of \(allowed), not '\(text)'")
        }
        return value
    }

    private static func sequence(_ node: Node, _ key: String) throws -> [Node] {
        guard case .sequence(let items) = node else { throw Error(line: node.mark?.line, message: "\(key) must be a list") }
        return Array(items)
    }

    private static func map(_ node: Node, _ key: String, allowed: Set<String>) throws -> [(String, Node)] {
        guard case .mapping(let mapping) = node else { throw Error(line: node.mark?.line, message: "\(key) must be a mapping") }
        return try mapping.map { entry in
            guard let name = entry.key.string, allowed.contains(name) else {
                throw Error(line: entry.key.mark?.line, message: "unknown \(key) entry '\(entry.key.string ?? "?")'")
            }
            return (name, entry.value)
        }
    }
}
