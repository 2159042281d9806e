/// Storage pool drivers qubesd knows, with the attributes each accepts and
/// the order it writes them in.
public enum PoolDriver: String, Sendable, CaseIterable {
    case file
    case fileReflink = "file-reflink"
    case linuxKernel = "linux-kernel"
    case lvmThin = "lvm_thin"
    case zfs
    case callback

    /// The Python class name qubesd's errors mention.
    var className: String {
        switch self {
        case .file: "FilePool"
        case .fileReflink: "ReflinkPool"
        case .linuxKernel: "LinuxKernel"
        case .lvmThin: "ThinPool"
        case .zfs: "ZFSQpool"
        case .callback: "CallbackPool"
        }
    }

    /// Attributes in save order (`name` and `driver` included).
    var saveOrder: [String] {
        switch self {
        case .file, .fileReflink: ["name", "dir_path", "driver", "revisions_to_keep", "ephemeral_volatile"]
        case .linuxKernel: ["name", "dir_path", "driver"]
        case .lvmThin: ["name", "volume_group", "thin_pool", "driver", "revisions_to_keep", "ephemeral_volatile"]
        case .zfs: ["name", "container", "driver", "revisions_to_keep", "ephemeral_volatile", "snap_on_start_forensics"]
        case .callback: ["name", "driver", "conf_id"]
        }
    }

    /// Required keyword arguments of the driver.
    var required: [String] {
        switch self {
        case .file, .fileReflink, .linuxKernel: ["dir_path"]
        case .lvmThin: ["volume_group", "thin_pool"]
        case .zfs: ["container"]
        case .callback: ["conf_id"]
        }
    }

    /// Accepted on load but never written.
    var ignored: Set<String> { self == .fileReflink ? ["setup_check"] : [] }

    /// Builds a pool from the attributes of its `<pool>` element, applying
    /// the driver's checks and normalisation (docs/qubes-xml.md, "Pools").
    /// `hasCallbackConfiguration` says whether the host has qubesd's
    /// callback configuration file, without which a callback pool fails.
    func makePool(name: String, attributes: [XMLNode.Attribute], hasCallbackConfiguration: Bool) throws -> Pool {
        var given: [String: String] = [:]
        for attribute in attributes where attribute.name != "name" && attribute.name != "driver" {
            guard saveOrder.contains(attribute.name) || ignored.contains(attribute.name) else {
                throw StoreError(
                    .typeError, "\(className).__init__() got an unexpected keyword argument '\(attribute.name)'",
                    field: "pool \(name)", value: attribute.name)
            }
            given[attribute.name] = attribute.value
        }
        for key in required where given[key] == nil {
            throw StoreError(
                .typeError, "\(className).__init__() missing 1 required keyword-only argument: '\(key)'",
                field: "pool \(name)")
        }
        switch self {
        case .file, .fileReflink:
            given["revisions_to_keep"] = try revisionsToKeep(given["revisions_to_keep"] ?? "1", pool: name)
            given["ephemeral_volatile"] = try Self.parseBool(given["ephemeral_volatile"] ?? "False", pool: name)
            if self == .file || given["dir_path"]?.hasPrefix("/") == true {
                given["dir_path"] = given["dir_path"].map(ValueParsers.normalizedPath)
            }
        case .lvmThin:
            // ThinPool keeps revisions_to_keep as given and only checks it when a volume uses it.
            given["revisions_to_keep"] = given["revisions_to_keep"] ?? "1"
            given["ephemeral_volatile"] = try Self.parseBool(given["ephemeral_volatile"] ?? "False", pool: name)
        case .zfs:
            given["ephemeral_volatile"] = try Self.parseBool(given["ephemeral_volatile"] ?? "False", pool: name)
            given["revisions_to_keep"] = try revisionsToKeep(given["revisions_to_keep"] ?? "1", pool: name)
            given["snap_on_start_forensics"] = try Self.propertyBool(given["snap_on_start_forensics"] ?? "False", pool: name)
        case .callback:
            guard hasCallbackConfiguration else {
                throw StoreError(
                    .fileNotFoundError, "[Errno 2] No such file or directory: '\(Self.callbackConfigurationPath)'",
                    field: "pool \(name)", value: Self.callbackConfigurationPath)
            }
        case .linuxKernel:
            break
        }
        given["name"] = name
        given["driver"] = rawValue
        let ordered = saveOrder.compactMap { key in given[key].map { XMLNode.Attribute(name: key, value: $0) } }
        return Pool(name: name, driver: rawValue, attributes: ordered)
    }

    /// Where qubesd's callback driver reads its configuration.
    public static let callbackConfigurationPath = "/etc/qubes_callback.json"

    private func revisionsToKeep(_ text: String, pool: String) throws -> String {
        guard let number = ValueParsers.pythonInt(text) else {
            throw StoreError(
                .valueError, "invalid literal for int() with base 10: '\(text)'", field: "pool \(pool) revisions_to_keep",
                value: text)
        }
        if self == .file, let value = Int(number), value > 1 {
            throw StoreError(
                .notImplementedError, "FilePool supports maximum 1 volume revision to keep",
                field: "pool \(pool) revisions_to_keep", value: text)
        }
        // The file-reflink driver keeps the text; the others save the integer.
        return self == .fileReflink ? text : number
    }

    /// qubesd's `parse_bool`: exact spellings only.
    private static func parseBool(_ text: String, pool: String) throws -> String {
        switch text {
        case "True", "1", "on": return "True"
        case "False", "0", "off", "": return "False"
        default:
            throw StoreError(.valueError, "invalid bool: \(text)", field: "pool \(pool) ephemeral_volatile", value: text)
        }
    }

    /// qubesd's boolean property setter: case-insensitive words.
    private static func propertyBool(_ text: String, pool: String) throws -> String {
        switch text.lowercased() {
        case "1", "yes", "true", "on": return "True"
        case "0", "no", "false", "off": return "False"
        default:
            throw StoreError(
                .qubesValueError, "Invalid literal for boolean property: '\(text)'",
                field: "pool \(pool) snap_on_start_forensics", value: text)
        }
    }
}

extension Store {
    /// The effective global `default_pool`: explicit, else a pool named
    /// `default`, else a file-based pool at `/var/lib/qubes`.
    public var defaultPool: String? {
        if let explicit = globalProperties["default_pool"] { return explicit }
        if pools["default"] != nil { return "default" }
        return pools.values.first {
            ($0.driver == PoolDriver.file.rawValue || $0.driver == PoolDriver.fileReflink.rawValue)
                && $0[attribute: "dir_path"] == "/var/lib/qubes"
        }?.name
    }

    /// The volume names that have a global `default_pool_<volume>`.
    public static let standardVolumes: Set<String> = ["root", "private", "volatile", "kernel"]

    /// The effective `default_pool_<volume>` for a standard volume name, or
    /// `nil` for a volume name that has no such global property.
    public func defaultPool(forVolume volume: String) -> String? {
        guard Self.standardVolumes.contains(volume) else { return nil }
        return globalProperties["default_pool_" + volume] ?? defaultPool
    }
}
