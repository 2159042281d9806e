import QubesStore
import Yams

/// What a user adds to Liteqube without changing it (docs/liteqube.md, "Customising"): extra
/// packages, firmware, the guard's switches per qube and the qubes retired.
enum Customising {
    /// The most extra packages or firmware packages a manifest may name.
    static let packageLimit = 200

    /// What is wrong with a Debian package name (Debian policy 5.6.1: lower-case letters, digits,
    /// `+`, `-` and `.`, at least two characters, starting with a letter or digit), or `nil`.
    static func packageProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        func plain(_ byte: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
        guard (2...100).contains(bytes.count), plain(bytes[0]), bytes.allSatisfy({ plain($0) || "+-.".utf8.contains($0) }) else {
            return "is not a Debian package name (lower-case letters, digits, '+', '-' and '.', starting with a letter or digit)"
        }
        return nil
    }
}

extension Customising {
    /// Debian 13's firmware package for a Wi-Fi chip by its maker's PCI vendor id.
    static let wirelessFirmware = [
        "8086": "firmware-iwlwifi", "10ec": "firmware-realtek", "168c": "firmware-atheros", "17cb": "firmware-atheros",
        "14e4": "firmware-brcm80211", "14c3": "firmware-mediatek",
    ]

    /// The firmware packages for PCI devices by their identities (`vendor:product::pCCSSII`): a network
    /// controller's (class 02) maker's Wi-Fi firmware, for Realtek also its Ethernet chips'; a device
    /// whose identity names no class counts as a network controller.
    static func firmware(for identities: [String]) -> [String] {
        var packages: [String] = []
        for identity in identities {
            let fields = identity.split(separator: ":", omittingEmptySubsequences: false)
            let vendor = String(fields[0]).lowercased()
            let deviceClass = fields.last.flatMap { $0.hasPrefix("p") && $0.count >= 5 ? String($0.dropFirst().prefix(4)) : nil }
            guard deviceClass?.hasPrefix("02") ?? true, let package = wirelessFirmware[vendor] else { continue }
            guard deviceClass == nil || deviceClass == "0280" || vendor == "10ec" else { continue }
            if !packages.contains(package) { packages.append(package) }
        }
        return packages
    }
}

extension Setting where Value == Int {
    /// A whole number in `range`.
    static func number(_ key: String, default defaultValue: Int, range: ClosedRange<Int>) -> Setting {
        Setting(key, default: defaultValue) { node, key in
            guard case .scalar(let scalar) = node, let number = Int(scalar.string), range.contains(number) else {
                throw Manifest.Error(line: node.mark?.line, message: "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
    }
}

extension Setting where Value == [String]? {
    /// An optional list of Debian package names; absent means `nil` (a default worked out from the system).
    static func packages(_ key: String) -> Setting {
        let list = Setting<[String]>.list(key, default: [], limit: Customising.packageLimit, problem: Customising.packageProblem)
        return Setting(key, default: nil) { node, key in try list.read(node, key) }
    }
}

extension Base {
    static let packages = Setting<[String]>.list("packages", default: [], limit: Customising.packageLimit, problem: Customising.packageProblem)
}

extension Network {
    static let firmware = Setting<[String]?>.packages("firmware")
    static let idleTime = Setting<Int>.number("idle_time", default: 300, range: 30...86_400)
}

extension Manifest {
    /// Debian packages installed into debian-core besides the components' own (and kept by the slimming).
    public var packages: [String] {
        get { self[Base.packages] }
        set { self[Base.packages] = newValue }
    }

    /// The network qube's firmware packages; `nil`: those of the PCI network devices it takes over
    /// (`effectiveFirmware`).
    public var firmware: [String]? {
        get { self[Network.firmware] }
        set { self[Network.firmware] = newValue }
    }

    /// The firmware installed: the manifest's, else that of the PCI network devices the planner found.
    public var effectiveFirmware: [String] { firmware ?? Customising.firmware(for: networkDevices) }

    /// Seconds without received traffic after which the update qube powers off.
    public var idleTime: Int {
        get { self[Network.idleTime] }
        set { self[Network.idleTime] = newValue }
    }
}

extension Base {
    /// The boot guard's settings files (docs/boot-guard.md, "Settings"): debian-core's own (`OBSCURE=No`)
    /// with the manifest's switches for it, and one for every other qube the manifest sets switches for.
    static func guardSettings(_ overlay: inout Overlay) {
        let manifest = overlay.manifest
        let roles = manifest.components.flatMap(\.roles).map(\.role).filter { $0 == .core || manifest.guardSettings[$0] != nil }
        for role in roles {
            let own = role == .core ? overlay.text("\(Overlay.protect)/settings.{{core}}") : ""
            let lines = Manifest.GuardSwitch.allCases.compactMap { name -> String? in
                guard role != .core || name != .obscure, let on = manifest.guardSettings[role]?[name] else { return nil }
                return "\(name.fileKey)=\(on ? "Yes" : "No")\n"
            }
            overlay.file("\(Overlay.protect)/settings.{{\(role.rawValue)}}", content: own + lines.joined())
        }
    }
}
