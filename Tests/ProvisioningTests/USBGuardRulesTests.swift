import Foundation
import Testing

@testable import Provisioning

/// core-usb's usbguard rules, judged over devices' interface sets with the
/// operators of usbguard-rules.conf(5): a device is let in only when every
/// interface is of the one allowed kind (docs/liteqube.md, "USB qube").
@Suite struct USBGuardRulesTests {
    /// One `allow|reject with-interface OPERATOR { CC:SS:PP … }` rule.
    struct Rule {
        var allow: Bool
        var quantifier: String
        var patterns: [String]

        init?(_ line: Substring) {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 6, ["allow", "reject"].contains(words[0]), words[1] == "with-interface", words[3] == "{",
                words.last == "}"
            else { return nil }
            (allow, quantifier, patterns) = (words[0] == "allow", words[2], Array(words[4..<(words.count - 1)]))
        }

        static func matches(_ pattern: String, _ interface: String) -> Bool {
            zip(pattern.split(separator: ":"), interface.split(separator: ":")).allSatisfy { $0 == "*" || $0 == $1 }
        }

        /// Whether the rule matches a device with these interfaces, per the man page's operators.
        func matches(_ interfaces: [String]) -> Bool {
            let present = { (pattern: String) in interfaces.contains { Self.matches(pattern, $0) } }
            switch quantifier {
            case "all-of": return patterns.allSatisfy(present)
            case "one-of": return patterns.contains(where: present)
            case "none-of": return !patterns.contains(where: present)
            case "match-all": return interfaces.allSatisfy { interface in patterns.contains { Self.matches($0, interface) } }
            case "equals":
                return interfaces.allSatisfy { interface in patterns.contains { Self.matches($0, interface) } } && patterns.allSatisfy(present)
            default: return false
            }
        }
    }

    /// The rules file lq writes.
    static func text(inputDevices: Bool) throws -> String {
        var manifest = Manifest(components: [.base, .usb])
        manifest.usbInputDevices = inputDevices
        let steps = try Overlay.templateSteps(manifest, package: nil, networks: [])
        return try #require(steps.lazy.compactMap { step -> String? in
            if case .entry(let entry) = step, entry.path == "/etc/usbguard/rules.conf", case .file(let text) = entry.kind { text } else { nil }
        }.first)
    }

    static func rules(inputDevices: Bool) throws -> [Rule] {
        let lines = try text(inputDevices: inputDevices).split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        let rules = lines.compactMap(Rule.init)
        #expect(rules.count == lines.count, "every rule is one this test reads: \(lines)")
        return rules
    }

    /// The first rule that matches decides; none: rejected (`ImplicitPolicyTarget=reject`).
    static func allowed(_ interfaces: [String], by rules: [Rule]) -> Bool { rules.first { $0.matches(interfaces) }?.allow ?? false }

    static let storage = "08:06:50", uas = "08:06:62", keyboard = "03:01:01", mouse = "03:01:02", hid = "03:00:00"
    static let ethernet = "02:06:00", cdcData = "0a:00:00", wireless = "e0:01:01"

    @Test(arguments: [true, false])
    func onlyDevicesOfOneAllowedKindAreLetIn(inputDevices: Bool) throws {
        let rules = try Self.rules(inputDevices: inputDevices)
        for device in [[Self.storage], [Self.storage, Self.uas]] {
            #expect(Self.allowed(device, by: rules), "\(device)")
        }
        for device in [
            [Self.storage, Self.keyboard], [Self.storage, Self.hid], [Self.storage, Self.ethernet], [Self.storage, Self.cdcData],
            [Self.storage, Self.wireless], [Self.keyboard, Self.ethernet], [Self.hid, Self.wireless], [Self.ethernet],
            [Self.wireless], ["ff:00:00"], [Self.storage, "ff:ff:ff"],
        ] {
            #expect(!Self.allowed(device, by: rules), "\(device) must be rejected")
        }
        for device in [[Self.keyboard], [Self.keyboard, Self.mouse], [Self.hid]] {
            #expect(Self.allowed(device, by: rules) == inputDevices, "\(device)")
        }
    }

    /// The old rule (`all-of`) lets a storage stick that is also a keyboard through: the model sees it.
    @Test func allOfAloneWouldLetABadUSBStickIn() throws {
        let old = try #require(Rule("allow with-interface all-of { 08:*:* }"))
        #expect(Self.allowed([Self.storage, Self.keyboard], by: [old]))
    }

    static let parser = ["/usr/bin/usbguard-rule-parser", "/usr/sbin/usbguard-rule-parser"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: parser != nil, "usbguard-rule-parser is not installed (apt-get install usbguard)"))
    func usbguardParsesEveryRule() throws {
        for line in try Self.text(inputDevices: true).split(separator: "\n") where !line.hasPrefix("#") {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try #require(Self.parser))
            process.arguments = [String(line)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "usbguard-rule-parser refuses: \(line)")
        }
    }
}
