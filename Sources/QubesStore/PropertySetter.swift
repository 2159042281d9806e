/// qubesd's property setters: turn a value read from XML into the text the
/// store keeps and saves, or fail with the exception qubesd raises.
enum PropertySetter {
    static let noneIntArgument = "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"

    /// Normalises a non-reference value. `vmClass` is `nil` for global properties.
    static func normalize(_ value: String?, spec: PropertySpec, vmClass: VMClass?, labels store: Store) throws -> String {
        let name = spec.name
        switch spec.kind {
        case .readOnly:
            throw StoreError(.qubesPropertyValueError, "property '\(name)' on \(vmClass?.rawValue ?? "Qubes") instance cannot be set")
        case .bool:
            guard let value else { return "False" }
            guard let flag = ValueParsers.bool(value) else {
                throw StoreError(.qubesValueError, "Invalid literal for boolean property: '\(value)'")
            }
            return flag ? "True" : "False"
        case .int, .positiveInt, .nonNegativeInt, .qid:
            guard let value else { throw StoreError(.typeError, noneIntArgument) }
            guard let number = ValueParsers.pythonInt(value) else {
                throw StoreError(.valueError, "invalid literal for int() with base 10: '\(value)'")
            }
            let negative = number.hasPrefix("-")
            switch spec.kind {
            case .positiveInt where negative || number == "0":
                throw StoreError(.qubesPropertyValueError, "\(name) must be positive")
            case .nonNegativeInt where negative:
                throw StoreError(.qubesPropertyValueError, "\(name) must be positive or zero")
            case .qid where !(Int(number).map { (0...10000).contains($0) } ?? false):
                throw StoreError(.valueError, "qid value must be between 0 and qubes.config.max_qid")
            default:
                return number
            }
        case .string, .defaultUser:
            guard let value else { return "None" }
            if spec.kind == .defaultUser && !ValueParsers.isValidUserName(value) {
                throw StoreError(
                    .qubesPropertyValueError,
                    "Username can contain only those characters: a-z, A-Z, 0-9, '_', '-', '+', ',', '.'")
            }
            return value
        case .qubeRef:
            return value ?? ""
        case .pool:
            guard let value, store.pools[value] != nil else {
                throw StoreError(.qubesPropertyValueError, "No such storage pool")
            }
            return value
        case .label:
            guard let value else { throw StoreError(.typeError, noneIntArgument) }
            return try labelName(value, in: store)
        case .uuid:
            guard let value else {
                throw StoreError(.typeError, "one of the hex, bytes, bytes_le, fields, or int arguments must be given")
            }
            guard let uuid = ValueParsers.uuid(value) else {
                throw StoreError(.valueError, "badly formed hexadecimal UUID string")
            }
            return uuid
        case .ipv4:
            return try ValueParsers.ipv4(value ?? "").get()
        case .ipv6:
            return try ValueParsers.ipv6(value ?? "").get()
        case .mac:
            guard let value, let mac = ValueParsers.mac(value) else {
                throw StoreError(.valueError, "Invalid MAC address value")
            }
            return mac
        case .virtMode:
            let lowered = value?.lowercased() ?? ""
            guard ["hvm", "pv", "pvh"].contains(lowered) else {
                throw StoreError(.qubesPropertyValueError, "Invalid virtualization mode, supported values: hvm, pv, pvh")
            }
            return lowered
        case .kernel:
            guard let value else { return "" }
            if value.contains("/") { throw StoreError(.qubesPropertyValueError, "Kernel name cannot contain '/'") }
            return value
        case .kernelopts:
            guard let value else { return "" }
            if value.unicodeScalars.count > 512 {
                throw StoreError(.qubesPropertyValueError, "Kernelopts value too long (512 chars max)")
            }
            return value
        case .devicesDenied:
            return try ValueParsers.devicesDenied(value ?? "").get()
        case .keyboardLayout:
            guard let value else { throw StoreError(.attributeError, "'NoneType' object has no attribute 'split'") }
            if let message = ValueParsers.keyboardLayoutError(value) {
                throw StoreError(.qubesPropertyValueError, message)
            }
            return value
        }
    }

    /// qubesd's label lookup: `label-N`, a label name, or a decimal index.
    static func labelName(_ value: String, in store: Store) throws -> String {
        func notFound() -> StoreError { StoreError(.qubesLabelNotFoundError, "Label does not exist: \(value)") }
        if value.hasPrefix("label-") {
            let digits = String(value.dropFirst(6))
            guard let number = ValueParsers.pythonInt(digits) else {
                throw StoreError(.valueError, "invalid literal for int() with base 10: '\(digits)'")
            }
            guard let label = Int(number).flatMap({ store.labels[$0] }) else { throw notFound() }
            return label.name
        }
        if let label = store.label(named: value) { return label.name }
        if let number = ValueParsers.pythonInt(value), let label = Int(number).flatMap({ store.labels[$0] }) {
            return label.name
        }
        throw notFound()
    }

    /// The setter of a qube reference `name` on `owner` (`nil`: global).
    /// - Returns: the saved text: the target's name, or empty for none.
    static func reference(_ value: String?, name: String, owner: Domain?, in store: Store) throws -> String {
        guard let value, !value.isEmpty else {
            if name == "template", let owner {
                if owner.vmClass == .dispVM {
                    throw StoreError(.qubesPropertyValueError, "a disposable qube must have a template (qubesd never finishes loading this file)")
                }
                throw StoreError(.qubesException, "VMM operations disabled in offline mode (template cannot be none)")
            }
            return ""
        }
        guard let target = store[value] else {
            throw StoreError(.qubesPropertyValueError, "Can't set \(name) to non-existing qube \(value)")
        }
        func wrongClass(_ expected: String) -> StoreError {
            StoreError(
                .qubesPropertyValueError,
                "wrong VM class: domains['\(value)'] is of type \(target.vmClass.rawValue) and not \(expected)")
        }
        if target.vmClass == .remoteVM && name != "relayvm" { throw wrongClass("LocalVM") }
        switch (name, owner?.vmClass) {
        case ("default_template", nil), ("template", .appVM?):
            guard target.vmClass == .templateVM else { throw wrongClass("TemplateVM") }
        case ("template", .dispVM?):
            guard target.properties["template_for_dispvms"] == "True" else {
                throw StoreError(.qubesPropertyValueError, "template for disposable must have template_for_dispvms=True")
            }
        case ("netvm", _?):
            guard target.vmClass != .adminVM else {
                throw StoreError(.attributeError, "'AdminVM' object has no attribute 'provides_network'")
            }
            guard target.properties["provides_network"] == "True" else {
                throw StoreError(.qubesValueError, "The \(value) qube does not provide network")
            }
        default:
            break
        }
        return target.name
    }
}
