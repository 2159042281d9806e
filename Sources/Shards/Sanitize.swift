import LQCommon
import OrderedCollections
import QrexecPolicy
import QubesStore

/// What the user grants shards beyond the defaults, and the policy that
/// decides which tags grant rights.
public struct SanitizeOptions: Sendable {
    /// Shards whose device assignments are kept (`--allow-devices`).
    public var allowDevices: Set<String>
    /// Tags applied even when the policy grants rights to them (`--allow-tags`).
    public var allowTags: Set<String>
    /// Tags some allow or ask rule of the policy has as its source (`@tag:X`).
    public var grantingTags: Set<String>

    public init(allowDevices: Set<String> = [], allowTags: Set<String> = [], grantingTags: Set<String> = []) {
        self.allowDevices = allowDevices
        self.allowTags = allowTags
        self.grantingTags = grantingTags
    }

    /// The tags `policy` grants rights to: sources `@tag:X` of allow and ask rules.
    public static func grantingTags(of policy: Policy) -> Set<String> {
        var tags = Set<String>()
        for rule in policy.rules {
            guard case .tag(let tag) = rule.source else { continue }
            if case .deny = rule.action { continue }
            tags.insert(tag)
        }
        return tags
    }
}

/// One change merge or split made to a qube, or a qube it left out.
public struct ShardChange: Sendable, Hashable, CustomStringConvertible {
    public var qube: String
    /// `class`, `property.netvm`, `feature.NAME`, `tag.NAME`, `devices.CLASS`, `volume.NAME`, …
    public var field: String
    /// The value in the input (`nil`: absent).
    public var old: String?
    /// The value written (`nil`: removed or withheld).
    public var new: String?

    public init(qube: String, field: String, old: String?, new: String?) {
        self.qube = qube
        self.field = field
        self.old = old
        self.new = new
    }

    public var description: String {
        "qube '\(qube)' \(field): " + (old.map { "'\($0)'" } ?? "(absent)") + " -> " + (new.map { "'\($0)'" } ?? "(withheld)")
    }

    public var json: JSONValue {
        .object(["qube": .string(qube), "field": .string(field), "old": old.map(JSONValue.string) ?? .null,
                 "new": new.map(JSONValue.string) ?? .null])
    }
}

/// The per-qube rules of merge that need no other qube (docs/shards.md, "Sanitize"):
/// privileged features, properties, devices and rights-granting tags are
/// withheld; the result is what the merged store may hold.
public enum ShardSanitizer {
    /// Properties that point into dom0 privileges; reset to their defaults.
    public static let privilegedProperties: Set<String> = ["guivm", "audiovm", "management_dispvm", "kernelopts"]
    /// Feature name prefixes that change how dom0 treats the qube.
    public static let privilegedFeaturePrefixes = ["gui-", "audio-", "stubdom-"]
    /// Feature names that change how dom0 treats the qube.
    public static let privilegedFeatures: Set<String> = [
        "internal", "video-model", "input-dom0-proxy", "uefi", "no-monitor-layout", "qubes-vm-update-update-if-stale",
        "skip-update", "restart-after-update",
    ]
    /// Qube classes a shard may hold.
    public static let allowedClasses: Set<VMClass> = [.appVM, .dispVM, .templateVM, .standaloneVM]

    /// The tag merge adds to every qube of shard `name`.
    public static func tag(ofShard name: String) -> String { "shard-" + name }

    /// Whether dom0 treats a qube differently because of this feature.
    public static func isPrivilegedFeature(_ name: String) -> Bool {
        privilegedFeatures.contains(name) || privilegedFeaturePrefixes.contains { name.hasPrefix($0) }
    }

    /// Whether a property value points into dom0 privileges (none, the empty
    /// value, grants nothing and stays).
    public static func isPrivileged(property name: String, value: String) -> Bool {
        (privilegedProperties.contains(name) && !value.isEmpty) || (name == "virt_mode" && value.lowercased() == "pv")
    }

    /// The prefixes of the tags qubesd derives from a property (`Store.derivedTags`),
    /// for each such property that sanitizing reset: the loader derives them
    /// again from the default.
    static func derivedTagPrefixes(withheldFrom original: Domain, in sanitized: Domain) -> [String] {
        Store.derivedTags.filter { original.properties[$0.property] != sanitized.properties[$0.property] }.map(\.prefix)
    }

    /// `domain` of shard `shard` with everything withheld that it may not bring in.
    /// - Returns: the sanitized qube and one change per withheld item.
    public static func sanitize(_ domain: Domain, shard: String, options: SanitizeOptions) -> (Domain, [ShardChange]) {
        var result = domain
        var changes: [ShardChange] = []
        func change(_ field: String, _ old: String?, _ new: String? = nil) {
            changes.append(ShardChange(qube: domain.name, field: field, old: old, new: new))
        }
        let privileged = domain.properties.filter { isPrivileged(property: $0.key, value: $0.value) }
        for (name, value) in privileged.sorted(by: { ExactString($0.key) < ExactString($1.key) }) {
            result.properties[name] = nil
            change("property." + name, value)
        }
        for (name, value) in domain.features where isPrivilegedFeature(name.value) {
            result.features[name] = nil
            change("feature." + name.value, value)
        }
        let derived = derivedTagPrefixes(withheldFrom: domain, in: result)
        for tag in domain.tags {
            let isShardTag = tag.value.hasPrefix("shard-")
            let grants = options.grantingTags.contains(tag.value) && !options.allowTags.contains(tag.value)
            if isShardTag || grants || derived.contains(where: tag.value.hasPrefix) {
                result.tags.remove(tag)
                change("tag." + tag.value, tag.value)
            }
        }
        if !options.allowDevices.contains(shard) {
            for (deviceClass, assignments) in domain.devices {
                result.devices[deviceClass] = nil
                change("devices." + deviceClass, assignments.map(\.port).joined(separator: " "))
            }
        }
        return (result, changes)
    }
}
