import QrexecPolicy

/// The qrexec policy of the installed components (spec §4.2, with the
/// original's [BUG]s fixed), in the Qubes 4.1+ format.
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

    /// The rules, in file order.
    public static func rules(_ manifest: Manifest) -> [Rule] {
        let name = manifest.name
        var rules: [Rule] = []
        func notify(_ sources: [String], extra: [String] = []) {
            for service in ["liteqube.Message", "liteqube.Error"] + extra {
                for source in sources { rules.append(Rule(service: service, source: source, target: "@adminvm", action: "allow")) }
            }
        }
        func xorg(_ sources: [String]) {
            for source in sources {
                // Re-impl of the [SEC] note: every client shares one display, so each connection is asked for.
                rules.append(Rule(service: "liteqube.SplitXorg", source: source, target: name("xorg"), action: "ask default_target=\(name("xorg"))"))
            }
        }
        let base = [name("core"), name("dvm"), name("xorg"), name("keys")]
        notify(base)
        xorg([name("dvm"), name("keys")])
        if manifest.components.contains(.network) {
            if manifest.effectiveFirewall == .linux {
                notify([name("fw-net"), name("fw-tor")])
                xorg([name("fw-net"), name("fw-tor")])
            }
            if manifest.disposableNetVM {
                rules.append(Rule(service: "liteqube.SplitFile", source: name("net"), target: name("keys"), action: "allow"))
            }
            let network = [name("net"), name("tor"), name("update")]
            notify(network)
            xorg(network)
            rules.append(Rule(service: "liteqube.SignalWifi", source: name("net"), target: "@adminvm", action: "allow"))
            rules.append(Rule(service: "liteqube.SignalTor", source: name("tor"), target: "@adminvm", action: "allow"))
            rules.append(Rule(service: "liteqube.TorSetAP", source: name("net"), target: name("tor"), action: "allow"))
            rules.append(Rule(service: "liteqube.WifiRequestAP", source: name("tor"), target: name("net"), action: "allow"))
            rules.append(Rule(service: "qubes.UpdatesProxy", source: "@type:TemplateVM", target: "@default", action: "allow target=\(name("update"))"))
            rules.append(Rule(service: "qubes.UpdatesProxy", source: "@anyvm", target: "@anyvm", action: "deny"))
        }
        if manifest.components.contains(.usb) {
            notify([name("usb")], extra: ["liteqube.SignalStorage"])
            xorg([name("usb")])
            if manifest.usbInputDevices {
                for service in ["qubes.InputKeyboard", "qubes.InputMouse", "qubes.InputTablet"] {
                    rules.append(Rule(service: service, source: name("usb"), target: "@adminvm", action: "allow"))
                }
            }
        }
        return rules
    }

    /// The policy file text, made and checked by the policy library: the
    /// rules are parsed as dom0 parses them and the file must read back the same.
    public static func text(_ manifest: Manifest) throws -> String {
        let draft = "/draft/" + fileName
        let lines = rules(manifest).map(\.line).joined(separator: "\n") + "\n"
        let loaded = PolicyLoader(directories: ["/draft"], legacyDirectory: "/nonexistent", fileSystem: MemoryPolicyFiles([draft: lines]))
            .load()
        if let error = loaded.errors.first { throw ProvisioningError("generated policy does not parse: \(error)") }
        let header = [
            "Liteqube service qubes: qrexec policy written by lq.",
            "Changes are overwritten by the next `lq apply`; put your own rules in 30-user.policy.",
        ]
        do {
            let file = try PolicyFile(priority: 45, name: "liteqube", header: header, rules: loaded.policy.rules)
            guard let text = try PolicyGenerator.render([file])[fileName] else { throw ProvisioningError("policy file name mismatch") }
            return text
        } catch let error as PolicyError {
            throw ProvisioningError("generated policy is not valid: \(error)")
        }
    }
}
