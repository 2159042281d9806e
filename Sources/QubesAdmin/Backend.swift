import QubesStore

/// One line of `admin.vm.List`.
public struct QubeSummary: Sendable, Hashable {
    public var name: String
    public var vmClass: VMClass
    public var state: PowerState
    public var uuid: String

    public init(name: String, vmClass: VMClass, state: PowerState, uuid: String) {
        self.name = name
        self.vmClass = vmClass
        self.state = state
        self.uuid = uuid
    }
}

/// A qube's power state, as `admin.vm.List` and `admin.vm.CurrentState` name it.
public enum PowerState: String, Sendable, Hashable, CaseIterable {
    case halted = "Halted", transient = "Transient", running = "Running", paused = "Paused", suspended = "Suspended"
    case halting = "Halting", dying = "Dying", crashed = "Crashed", unknown = "NA"

    /// Anything but halted: the qube holds its devices and its network clients.
    public var isStarted: Bool { self != .halted }
}

/// A property as `*.property.Get` reports it: `default=<bool> type=<type> <value>`.
public struct PropertyValue: Sendable, Hashable {
    /// `vm`, `int`, `bool`, `label` or `str`.
    public var type: String
    /// Whether the value is the computed default (no explicit value stored).
    public var isDefault: Bool
    /// The value text; for `vm`, empty means none.
    public var value: String

    public init(type: String, isDefault: Bool, value: String) {
        self.type = type
        self.isDefault = isDefault
        self.value = value
    }

    /// The Get wire text.
    public var wireText: String { "default=\(isDefault ? "True" : "False") type=\(type) \(value)" }

    /// The GetAll line: name, then the Get text with `\` and newlines escaped.
    public func getAllLine(name: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return "\(name) " + PropertyValue(type: type, isDefault: isDefault, value: escaped).wireText
    }

    /// Parses a GetAll line.
    public static func parseGetAllLine(_ line: String) -> (name: String, value: PropertyValue)? {
        guard let space = line.firstIndex(of: " "), var value = PropertyValue(wireText: String(line[line.index(after: space)...])) else {
            return nil
        }
        var unescaped = ""
        var escaping = false
        for character in value.value {
            if escaping {
                unescaped.append(character == "n" ? "\n" : character)
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                unescaped.append(character)
            }
        }
        value.value = unescaped
        return (String(line[..<space]), value)
    }

    /// Parses the Get wire text (the value is the rest, spaces and newlines included).
    public init?(wireText: String) {
        let parts = wireText.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "default=True" || parts[0] == "default=False", parts[1].hasPrefix("type=") else {
            return nil
        }
        self.init(type: String(parts[1].dropFirst(5)), isDefault: parts[0] == "default=True", value: String(parts[2]))
    }
}

/// What `lq` needs from a Qubes system, whether it talks to qubesd over its
/// socket (`AdminAPIBackend`) or edits a qubes.xml offline (`OfflineBackend`).
/// `qube` `nil` means the global properties. Errors are `AdminError`.
public protocol Backend: AnyObject {
    func qubes() throws -> [QubeSummary]
    func create(_ qube: Store.NewQube) throws
    func remove(_ qube: String) throws

    func propertyNames(of qube: String?) throws -> [String]
    func property(_ name: String, of qube: String?) throws -> PropertyValue
    /// Every property in one call (`GetAll`); fails as a whole if one read fails.
    func allProperties(of qube: String?) throws -> [(name: String, value: PropertyValue)]
    /// The default value, or `nil` for a property without default.
    func propertyDefault(_ name: String, of qube: String?) throws -> PropertyValue?
    /// Sets a property from text; for a qube reference, empty means none.
    func setProperty(_ name: String, of qube: String?, to value: String) throws
    func resetProperty(_ name: String, of qube: String?) throws

    func features(of qube: String) throws -> [String]
    func feature(_ name: String, of qube: String) throws -> String
    func setFeature(_ name: String, to value: String, of qube: String) throws
    func removeFeature(_ name: String, of qube: String) throws

    func tags(of qube: String) throws -> [String]
    func hasTag(_ tag: String, on qube: String) throws -> Bool
    func addTag(_ tag: String, to qube: String) throws
    func removeTag(_ tag: String, from qube: String) throws

    func labels() throws -> [String]
    func labelColor(_ label: String) throws -> String
    func pools() throws -> [String]
    func poolInfo(_ pool: String) throws -> [(key: String, value: String)]
    func volumes(of qube: String) throws -> [String]
    func volumeInfo(_ volume: String, of qube: String) throws -> [(key: String, value: String)]
    func setVolumeReadWrite(_ volume: String, of qube: String, to readWrite: Bool) throws
    /// Copies a volume's data from one qube to another (`CloneFrom` / `CloneTo`).
    func cloneVolume(_ volume: String, from source: String, to target: String) throws
    /// Grows a volume to `size` bytes (`admin.vm.volume.Resize`; qubesd refuses to shrink one).
    func resizeVolume(_ volume: String, of qube: String, to size: Int64) throws

    /// Devices a backend qube offers (`Available`): port, identity and description pairs.
    func availableDevices(of backend: String, deviceClass: String) throws -> [(port: String, identity: String, properties: [(key: String, value: String)])]
    func assignedDevices(of qube: String, deviceClass: String) throws -> [DeviceAssignment]
    func assign(_ device: DeviceAssignment, deviceClass: String, to qube: String) throws
    func unassign(_ device: DeviceAssignment, deviceClass: String, from qube: String) throws

    /// `Halted`, `Running`, …
    func powerState(of qube: String) throws -> String
    func start(_ qube: String) throws
    func shutdown(_ qube: String, force: Bool, wait: Bool) throws
    func kill(_ qube: String) throws

    /// Runs several changes as one unit: offline, loaded and saved once
    /// under the lock (nothing is saved if `body` throws); over the socket,
    /// qubesd saves after each call.
    func batch<Result>(_ body: () throws -> Result) throws -> Result
}

/// qubesd's device argument and assignment formats (docs/admin-api.md, "Devices").
public enum DeviceWire {
    /// `backend+port+device_id` with `:` → `+` and `*` → `_`.
    public static func argument(_ device: DeviceAssignment) -> String {
        [device.backendDomain ?? "*", device.port, device.identity]
            .map { $0 == "*" ? "_" : $0.replacingColons() }.joined(separator: "+")
    }

    /// Parses a device argument (device identities contain `+` for `:`).
    public static func parseArgument(_ argument: String) -> (backend: String?, port: String, identity: String)? {
        let parts = argument.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 else { return nil }
        let restore: (String) -> String = { $0 == "_" ? "*" : String($0.map { $0 == "+" ? ":" : $0 }) }
        let backend = restore(parts[0])
        return (backend == "*" ? nil : backend, restore(parts[1]), restore(parts[2]))
    }

    /// `key='value'` pairs, `'` escaped as `\'`.
    public static func serialization(_ device: DeviceAssignment, deviceClass: String, frontend: String?) -> String {
        var pairs: [(String, String)] = [
            ("device_id", device.identity), ("port_id", device.port), ("devclass", deviceClass),
            ("backend_domain", device.backendDomain ?? "*"), ("mode", device.mode.rawValue),
        ]
        if let frontend { pairs.append(("frontend_domain", frontend)) }
        for option in device.options { pairs.append(("_" + (option.name ?? ""), option.value)) }
        return pairs.map { "\($0.0)='\(escape($0.1))'" }.joined(separator: " ")
    }

    /// Parses `key='value'` pairs.
    public static func parseSerialization(_ text: String) -> [(key: String, value: String)]? {
        var pairs: [(key: String, value: String)] = []
        var characters = Substring(text)
        while !characters.isEmpty {
            characters = characters.drop { $0 == " " }
            guard let equals = characters.firstIndex(of: "=") else { return characters.isEmpty ? pairs : nil }
            let key = String(characters[..<equals])
            characters = characters[characters.index(after: equals)...]
            guard characters.first == "'" else { return nil }
            characters = characters.dropFirst()
            var value = ""
            var closed = false
            while let character = characters.first {
                characters = characters.dropFirst()
                if character == "\\", let next = characters.first {
                    value.append(next)
                    characters = characters.dropFirst()
                } else if character == "'" {
                    closed = true
                    break
                } else {
                    value.append(character)
                }
            }
            guard closed, !key.isEmpty else { return nil }
            pairs.append((key, value))
        }
        return pairs
    }

    /// The assignment a serialization describes.
    public static func assignment(fromSerialization text: String) -> DeviceAssignment? {
        guard let pairs = parseSerialization(text) else { return nil }
        var values: [String: String] = [:]
        var options: [(name: String?, value: String)] = []
        for (key, value) in pairs {
            if key.hasPrefix("_") { options.append((String(key.dropFirst()), value)) } else { values[key] = value }
        }
        let backend = values["backend_domain"] ?? "*"
        guard let mode = AssignmentMode(rawValue: values["mode"] ?? "required") else { return nil }
        return DeviceAssignment(
            backendDomain: backend == "*" ? nil : backend, port: values["port_id"] ?? "*", identity: values["device_id"] ?? "*",
            mode: mode, options: options)
    }

    private static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            if character == "'" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}

extension String {
    fileprivate func replacingColons() -> String { String(map { $0 == ":" ? "+" : $0 }) }
}
