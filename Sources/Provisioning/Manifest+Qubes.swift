import Yams

extension Manifest {
    /// A switch of the boot guard's `settings.<qube>` (docs/boot-guard.md, "Settings"), by its manifest name.
    public enum GuardSwitch: String, Sendable, Hashable, CaseIterable {
        case active, debug, poweroff, quarantine
        case allowRogue = "allow_rogue"
        case deployMissing = "deploy_missing"
        case obscure

        /// Its key in the settings file.
        var fileKey: String { rawValue.uppercased() }
    }

    /// Where a `files.<role>` tree comes from: a dom0 folder and its permissions list (relative to the
    /// manifest's folder unless absolute).
    public struct FilesSource: Sendable, Hashable {
        public var folder: String
        public var permissions: String

        public init(folder: String, permissions: String) {
            self.folder = folder
            self.permissions = permissions
        }
    }

    /// A qube's volume that `root_size:` or `private_size:` grows.
    public enum Volume: String, Sendable, Hashable, CaseIterable {
        case root, `private`

        /// Its manifest key.
        public var key: String { rawValue + "_size" }
    }

    /// The most MiB a volume may be given (16 TiB).
    static let volumeLimit = 1 << 24

    /// Reads the per-qube keys besides `names:` and `memory:` (docs/liteqube.md, "Customising"); `false`
    /// when `key` is none of them.
    mutating func readQubeKey(_ key: String, _ value: Node, roles: Set<String>) throws -> Bool {
        switch key {
        case "settings":
            for (role, switches) in try SettingReader.map(value, key, allowed: roles) {
                var chosen: [GuardSwitch: Bool] = [:]
                for (name, node) in try SettingReader.map(switches, "settings.\(role)", allowed: Set(GuardSwitch.allCases.map(\.rawValue))) {
                    guard let on = node.bool else { throw Error(line: node.mark?.line, message: "settings.\(role).\(name) must be true or false") }
                    if role == Role.core.rawValue, name == GuardSwitch.obscure.rawValue, on {
                        throw Error(line: node.mark?.line, message: "settings.core.obscure cannot be true: debian-core's guard keeps the rules it deploys")
                    }
                    chosen[GuardSwitch(rawValue: name)!] = on
                }
                guardSettings[Role(rawValue: role)] = chosen
            }
        case "files":
            for (role, source) in try SettingReader.map(value, key, allowed: roles) {
                var fields: [String: String] = [:]
                for (name, node) in try SettingReader.map(source, "files.\(role)", allowed: ["folder", "permissions"]) {
                    fields[name] = try SettingReader.text(node, "files.\(role).\(name)")
                }
                guard let folder = fields["folder"], let permissions = fields["permissions"] else {
                    throw Error(line: source.mark?.line, message: "files.\(role) needs both folder and permissions")
                }
                files[Role(rawValue: role)] = FilesSource(folder: folder, permissions: permissions)
            }
        case Volume.root.key, Volume.private.key:
            let volume = Volume(rawValue: String(key.dropLast(5)))!
            for (role, amount) in try SettingReader.map(value, key, allowed: roles) {
                guard case .scalar(let scalar) = amount, let mib = Int(scalar.string), (1...Self.volumeLimit).contains(mib) else {
                    throw Error(line: amount.mark?.line, message: "\(key).\(role) must be a whole number of MiB from 1 to \(Self.volumeLimit)")
                }
                volumeSizes[Role(rawValue: role), default: [:]][volume] = mib
            }
        default:
            return false
        }
        return true
    }
}
