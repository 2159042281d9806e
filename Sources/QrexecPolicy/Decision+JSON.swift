import LQCommon

extension Decision {
    /// The decision as one JSON object: `decision`, `requested_target`, `rule`
    /// {`file`, `line`, `text`}, and per decision `target` (allow), `targets`
    /// and `default_target` (ask), `user`, `notify`, `autostart`, `reason` (deny, error), `relay` {`qube`, `service`} (allow to a remote qube).
    public var json: JSONValue {
        var members: [String: JSONValue] = ["decision": .string(name)]
        members["requested_target"] = requestedTarget.map(JSONValue.string) ?? .null
        if let rule {
            members["rule"] = .object([
                "file": .string(rule.origin.file), "line": rule.origin.line.map { .integer(String($0)) } ?? .null,
                "text": .string(rule.description), "action": .string(rule.action.name),
            ])
        }
        func common(_ user: String?, _ notify: Bool, _ autostart: Bool) {
            members["user"] = user.map(JSONValue.string) ?? .null
            members["notify"] = .bool(notify)
            members["autostart"] = .bool(autostart)
        }
        switch outcome {
        case .allow(let target, let user, let notify, let autostart):
            members["target"] = .string(target)
            if let relay { members["relay"] = .object(["qube": .string(relay.qube), "service": .string(relay.service)]) }
            common(user, notify, autostart)
        case .ask(let targets, let defaultTarget, let user, let notify, let autostart):
            members["targets"] = .array(targets.map(JSONValue.string))
            members["default_target"] = defaultTarget.map(JSONValue.string) ?? .null
            common(user, notify, autostart)
        case .deny(let reason, let notify):
            members["reason"] = .string(reason)
            members["notify"] = .bool(notify)
        case .error(let reason):
            members["reason"] = .string(reason)
        }
        return .object(members)
    }

    /// Appends `json.compactText()` to `output` in one pass, without building the value
    /// (what `lq policy eval --json` writes for each of many calls).
    public func appendJSON(to output: inout [UInt8]) {
        var first = true
        func key(_ name: StaticString) {
            if first {
                output.append(UInt8(ascii: "{"))
            } else {
                output.append(UInt8(ascii: ","))
                output.append(0x20)
            }
            first = false
            output.append(UInt8(ascii: "\""))
            output.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            output.append(UInt8(ascii: "\""))
            output.append(UInt8(ascii: ":"))
            output.append(0x20)
        }
        func string(_ text: String?) {
            if let text { JSONValue.appendQuoted(text, to: &output) } else { output.append(contentsOf: "null".utf8) }
        }
        func bool(_ value: Bool) { output.append(contentsOf: (value ? "true" : "false").utf8) }
        func tail() {
            key("requested_target")
            string(requestedTarget)
            if let rule {
                key("rule")
                output.append(contentsOf: "{\"action\": ".utf8)
                string(rule.action.name)
                output.append(contentsOf: ", \"file\": ".utf8)
                string(rule.origin.file)
                output.append(contentsOf: ", \"line\": ".utf8)
                if let line = rule.origin.line { output.append(contentsOf: String(line).utf8) } else { output.append(contentsOf: "null".utf8) }
                output.append(contentsOf: ", \"text\": ".utf8)
                string(rule.description)
                output.append(UInt8(ascii: "}"))
            }
        }
        switch outcome {
        case .allow(let target, let user, let notify, let autostart):
            key("autostart"); bool(autostart)
            key("decision"); string(name)
            key("notify"); bool(notify)
            if let relay {
                key("relay")
                output.append(contentsOf: "{\"qube\": ".utf8)
                string(relay.qube)
                output.append(contentsOf: ", \"service\": ".utf8)
                string(relay.service)
                output.append(UInt8(ascii: "}"))
            }
            tail()
            key("target"); string(target)
            key("user"); string(user)
        case .ask(let targets, let defaultTarget, let user, let notify, let autostart):
            key("autostart"); bool(autostart)
            key("decision"); string(name)
            key("default_target"); string(defaultTarget)
            key("notify"); bool(notify)
            tail()
            key("targets")
            output.append(UInt8(ascii: "["))
            targets.appendJSON(to: &output)
            output.append(UInt8(ascii: "]"))
            key("user"); string(user)
        case .deny(let reason, let notify):
            key("decision"); string(name)
            key("notify"); bool(notify)
            key("reason"); string(reason)
            tail()
        case .error(let reason):
            key("decision"); string(name)
            key("reason"); string(reason)
            tail()
        }
        output.append(UInt8(ascii: "}"))
    }
}
