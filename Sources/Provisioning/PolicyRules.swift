import QrexecPolicy

/// The qrexec policy of the installed components, in the Qubes 4.1+ format
/// (docs/liteqube.md, "Policy").
public enum PolicyRules {
    /// Where the policy goes: before Qubes 4.3's `50-config-updates.policy`,
    /// after the user's `30-user*.policy`.
    public static let fileName = "45-liteqube.policy"

    /// One rule: `service argument source target action [params]`.
    public struct Rule: Sendable, Hashable {
        public var service: String
        public var source: String
        public var target: String
        public var action: String

        public var line: String { "\(service)\t*\t\(source)\t\(target)\t\(action)" }
    }

    /// The rules, in file order: each component's in catalog order.
    public static func rules(_ manifest: Manifest) -> [Rule] {
        var builder = PolicyBuilder(manifest: manifest)
        for component in manifest.components { component.policy(&builder) }
        return builder.rules
    }

    /// The policy file text, made and checked by the policy library: the
    /// rules are parsed as dom0 parses them and the file must read back the same.
    public static func text(_ manifest: Manifest) throws -> String {
        let draft = "/draft/" + fileName
        let lines = rules(manifest).map(\.line).joined(separator: "\n") + "\n"
        let loaded = PolicyLoader(directories: ["/draft"], legacyDirectory: "/nonexistent", fileSystem: MemoryPolicyFiles([draft: lines]))
            .load()
        if let error = loaded.errors.first { throw ProvisioningError(.invalidPolicy, "generated policy does not parse", cause: error) }
        let header = [
            "Liteqube service qubes: qrexec policy written by lq.",
            "Changes are overwritten by the next `lq apply`; put your own rules in 30-user.policy.",
        ]
        do {
            let file = try PolicyFile(priority: 45, name: "liteqube", header: header, rules: loaded.policy.rules)
            guard let text = try PolicyGenerator.render([file])[fileName] else { throw ProvisioningError(.invalidPolicy, "policy file name mismatch") }
            return text
        } catch let error as PolicyError {
            throw ProvisioningError(.invalidPolicy, "generated policy is not valid", cause: error)
        }
    }
}

/// Collects a component's policy rules, by role.
struct PolicyBuilder {
    let manifest: Manifest
    var rules: [PolicyRules.Rule] = []

    /// `service` from each source role's qube to the target (a role's qube or a keyword such as `@adminvm`).
    mutating func allow(_ service: String, from sources: [Role], to target: String, action: String = "allow") {
        for source in sources {
            rules.append(PolicyRules.Rule(service: service, source: manifest.name(source), target: target, action: action))
        }
    }

    mutating func allow(_ service: String, from source: Role, to target: Role) {
        allow(service, from: [source], to: manifest.name(target))
    }

    /// dom0's notifications (`liteqube.Message`, `liteqube.Error`, then `extra`) from these qubes.
    mutating func notify(_ sources: [Role], extra: [String] = []) {
        for service in ["liteqube.Message", "liteqube.Error"] + extra { allow(service, from: sources, to: "@adminvm") }
    }

    /// Terminals on the display qube: every client shares one display, so each connection is asked for
    /// (docs/liteqube.md, "Keys, passwords, terminals").
    mutating func display(_ sources: [Role]) {
        let xorg = manifest.name(.xorg)
        allow("liteqube.SplitXorg", from: sources, to: xorg, action: "ask default_target=\(xorg)")
    }

    /// A rule whose source and target are policy tokens, not roles.
    mutating func rule(_ service: String, _ source: String, _ target: String, _ action: String) {
        rules.append(PolicyRules.Rule(service: service, source: source, target: target, action: action))
    }
}
