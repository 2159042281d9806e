import LQCommon

/// Changes to a store with the checks qubesd applies to Admin API calls
/// (docs/admin-api.md, "Property Set"; docs/qubes-xml.md, "Admin API checks"). Errors carry qubesd's
/// exception class.
extension Store {
    // MARK: - Names and identifiers

    /// qubesd's qube-name check for new qubes and request values.
    /// - Throws: `QubesValueError` with qubesd's message.
    public static func validateQubeName(_ name: String) throws {
        if let problem = QubeName.problem(name) {
            throw StoreError(.qubesValueError, problem, field: "name", value: name)
        }
    }

    /// The lowest qid in 1..<8000 no qube uses (the range above belongs to shards).
    public func nextFreeQID() throws -> Int {
        for qid in 1..<shardQIDRange.lowerBound where self[qid: qid] == nil { return qid }
        throw StoreError(.lookupError, "Cannot find unused qid!")
    }

    /// The qube `name`, or qubesd's "No such domain" error.
    public func existing(_ name: String) throws -> Domain {
        guard let domain = self[name] else {
            throw StoreError(.qubesVMNotFoundError, "No such domain: '\(name)'", qube: name)
        }
        return domain
    }

    // MARK: - Qubes

    /// What a new qube is made of.
    public struct NewQube: Sendable {
        public var vmClass: VMClass
        public var name: String
        public var label: String
        /// The template (AppVM, DispVM); `nil` takes the global default.
        public var template: String?
        /// The pool of every writable volume that is not a snapshot (`CreateInPool` `pool=P`).
        public var pool: String?
        /// Volume name → pool (`CreateInPool` `pool:<volume>=P`).
        public var pools: [String: String]

        public init(
            vmClass: VMClass, name: String, label: String, template: String? = nil, pool: String? = nil,
            pools: [String: String] = [:]
        ) {
            self.vmClass = vmClass
            self.name = name
            self.label = label
            self.template = template
            self.pool = pool
            self.pools = pools
        }
    }

    /// Creates a qube as `admin.vm.Create.<Class>` does: lowest free qid,
    /// the given uuid (and dispid for a DispVM), label, template, the
    /// `created-by-<creator>` and GUI/audio tags, and its volumes.
    @discardableResult
    public mutating func createQube(
        _ new: NewQube, uuid: String, dispid: () -> Int = { Int.random(in: 0..<10000) }, creator: String = "dom0"
    ) throws -> Domain {
        guard new.vmClass != .adminVM else {
            throw StoreError(.qubesPropertyValueError, "property 'qid' on AdminVM instance cannot be set")
        }
        try Self.validateQubeName(new.name)
        guard !contains(new.name) else {
            throw StoreError(.qubesVMAlreadyExistsError, "Qube already exists: \(new.name)", qube: new.name)
        }
        let label = try PropertySetter.labelName(new.label, in: self)
        var domain = Domain(vmClass: new.vmClass, qid: try nextFreeQID(), name: new.name, uuid: uuid)
        domain.properties["label"] = label
        if new.vmClass.hasTemplate {
            let fallback = globalReference(new.vmClass == .dispVM ? "default_dispvm" : "default_template")
            guard let templateName = new.template ?? fallback else {
                throw StoreError(.qubesException, "No template given and no default set", qube: new.name, field: "template")
            }
            let template = try existing(templateName)
            if new.vmClass == .dispVM && template.properties["template_for_dispvms"] != "True" {
                throw StoreError(
                    .qubesValueError,
                    "template for disposable (\(templateName)) needs to be an AppVM with template_for_dispvms=True",
                    qube: new.name, field: "template", value: templateName)
            }
            if new.vmClass == .appVM && template.vmClass != .templateVM {
                throw StoreError(
                    .qubesPropertyValueError,
                    "wrong VM class: domains['\(templateName)'] is of type \(template.vmClass.rawValue) and not TemplateVM",
                    qube: new.name, field: "template", value: templateName)
            }
            domain.properties["template"] = template.name
        } else if let template = new.template {
            throw StoreError(.protocolError, "\(new.vmClass.rawValue) cannot be based on template", value: template)
        }
        if new.vmClass == .dispVM {
            domain.properties["dispid"] = String(try freeDispID(dispid))
        }
        domain.tags.append(ExactString("created-by-" + creator))
        if domain.vmClass.isQubesVM {
            for (property, prefix) in [("guivm", "guivm-"), ("audiovm", "audiovm-")] {
                if let target = effectiveReference(property, of: domain) { domain.tags.append(ExactString(prefix + target)) }
            }
        }
        if domain.vmClass.hasVolumes {
            guard new.pool == nil || new.pools.isEmpty else {
                throw StoreError(.protocolError, "Conflicting options specified: 'pool=', 'pool:volume='")
            }
            domain.volumes = try newVolumes(for: domain, pool: new.pool, pools: new.pools)
        }
        try insert(domain)
        return domain
    }

    /// A dispid no current DispVM has (up to 100 attempts, as qubesd).
    private func freeDispID(_ random: () -> Int) throws -> Int {
        let used = Set(domains.compactMap { $0.vmClass == .dispVM ? $0.properties["dispid"] : nil })
        for _ in 0..<100 {
            let candidate = random()
            if !used.contains(String(candidate)) { return candidate }
        }
        throw StoreError(.lookupError, "Cannot find unused dispid")
    }

    /// Removes a qube as `admin.vm.Remove` does: refused while anything uses it.
    public mutating func removeQube(_ name: String) throws {
        let domain = try existing(name)
        guard domain.vmClass != .adminVM else {
            throw StoreError(.qubesVMInUseError, "'dom0' cannot be removed", qube: name)
        }
        if let user = users(of: name).first {
            throw StoreError(
                .qubesVMInUseError, "Domain is in use: '\(name)';  see 'journalctl -u qubesd -e' in dom0 for details",
                qube: name, field: user.field, value: user.qube)
        }
        remove(name)
    }

    /// Every explicit reference to the qube `name`: (referring qube or `nil`
    /// for global, property or device field).
    public func users(of name: String) -> [(qube: String?, field: String)] {
        var users: [(qube: String?, field: String)] = []
        for (property, value) in globalProperties.sorted(by: { $0.key < $1.key })
        where Schema.global[property]?.kind == .qubeRef && value == name {
            users.append((nil, property))
        }
        for domain in domains where domain.name != name {
            for (property, value) in domain.properties.sorted(by: { $0.key < $1.key })
            where value == name && Schema.isQubeReference(property, of: domain.vmClass) {
                users.append((domain.name, property))
            }
            for (deviceClass, assignments) in domain.devices where assignments.contains(where: { $0.backendDomain == name }) {
                users.append((domain.name, "devices.\(deviceClass)"))
            }
        }
        return users
    }

    // MARK: - Properties

    /// Sets a property from its Admin API text (`qube` `nil`: global).
    /// An empty text for a qube reference means none.
    public mutating func setProperty(_ property: String, of qube: String?, to text: String) throws {
        let owner = try qube.map(existing)
        let spec = try self.spec(property, of: owner)
        if spec.writeOnce {
            throw StoreError(.attributeError, "property '\(property)' is write-once and already set", qube: qube, field: property)
        }
        let saved: String
        do {
            saved = try adminValue(text, spec: spec, owner: owner)
        } catch var error as StoreError {
            error.qube = error.qube ?? qube
            error.field = error.field ?? property
            if error.value == nil { error.value = text }
            throw error
        }
        try store(saved, as: property, of: qube)
    }

    /// Drops an explicit value, so the default applies again.
    public mutating func resetProperty(_ property: String, of qube: String?) throws {
        let owner = try qube.map(existing)
        let spec = try self.spec(property, of: owner)
        if spec.writeOnce {
            throw StoreError(.attributeError, "property '\(property)' is write-once", qube: qube, field: property)
        }
        try store(nil, as: property, of: qube)
    }

    /// Stores an explicit value (`nil`: none, back to the default) and runs qubesd's reactions.
    private mutating func store(_ saved: String?, as property: String, of qube: String?) throws {
        guard let qube else {
            globalProperties[property] = saved
            noneGlobalProperties.remove(property)
            return
        }
        update(qube) { domain in
            domain.properties[property] = saved
            domain.noneProperties.remove(property)
        }
        try afterChange(of: property, on: qube)
    }

    /// The schema entry of a settable property, or qubesd's refusal.
    func spec(_ property: String, of owner: Domain?) throws -> PropertySpec {
        let found = owner.map { Schema.property(property, of: $0.vmClass) } ?? Schema.global[property]
        guard let spec = found else {
            throw StoreError(
                .qubesNoSuchPropertyError, "Invalid property '\(property)' of \(owner?.name ?? "dom0")",
                qube: owner?.name, field: property)
        }
        if spec.kind == .readOnly || (owner?.vmClass == .adminVM && ["name", "qid", "uuid"].contains(property)) {
            throw StoreError(
                .qubesPropertyValueError,
                "property '\(property)' on \(owner?.vmClass.rawValue ?? "Qubes") instance cannot be set",
                qube: owner?.name, field: property)
        }
        return spec
    }

    /// The Admin API's parsing of a Set payload, then the property's setter
    /// and the interactive checks (docs/admin-api.md, "Property Set").
    private func adminValue(_ text: String, spec: PropertySpec, owner: Domain?) throws -> String {
        guard text.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw StoreError(.qubesValueError, "Non-ASCII bytes in property value")
        }
        switch spec.kind {
        case .qubeRef:
            if !text.isEmpty { try Self.validateQubeName(text) }
            let target = try PropertySetter.reference(text, name: spec.name, owner: owner, in: self)
            try checkReference(spec.name, target: target, owner: owner)
            return target
        case .bool:
            guard ValueParsers.bool(text) != nil else {
                throw StoreError(.qubesValueError, "Invalid literal for boolean property: '\(text)'")
            }
        case .int, .positiveInt, .nonNegativeInt, .qid:
            guard ValueParsers.pythonInt(text) != nil else {
                throw StoreError(.qubesValueError, "Failed to parse property value as int")
            }
        case .pool:
            guard pools[text] != nil else { throw StoreError(.qubesPropertyValueError, "No such storage pool") }
            return text
        default:
            let printable = text.utf8.allSatisfy { (0x20...0x7E).contains($0) || (0x09...0x0D).contains($0) }
            guard printable else { throw StoreError(.qubesValueError, "Invalid characters in property value") }
        }
        let value = try PropertySetter.normalize(text, spec: spec, vmClass: owner?.vmClass, labels: self)
        if spec.name == "virt_mode", value == "pvh", owner?.hasPCIDevices == true {
            throw StoreError(.qubesPropertyValueError, "pvh mode can't be set if pci devices are attached")
        }
        if spec.name == "provides_network", value == "False", let owner,
            let user = domains.first(where: { effectiveReference("netvm", of: $0) == owner.name && $0.name != owner.name })
        {
            throw StoreError(
                .qubesPropertyValueError, "Cannot unset provides_network, qube '\(user.name)' uses it as netvm")
        }
        return value
    }

    /// Checks of qube references beyond existence and class.
    private func checkReference(_ property: String, target: String, owner: Domain?) throws {
        guard !target.isEmpty, let targetQube = self[target] else { return }
        switch property {
        case "default_dispvm", "management_dispvm":
            guard targetQube.properties["template_for_dispvms"] == "True" else {
                throw StoreError(
                    .qubesPropertyValueError,
                    "Cannot set invalid property to qube '\(owner?.name ?? "dom0")', \(property) '\(target)' has template_for_dispvms set to False")
            }
        case "netvm" where owner != nil, "default_netvm" where owner == nil:
            if let owner, owner.name == target {
                throw StoreError(.qubesValueError, "The \(target) qube does not provide network")
            }
            if owner == nil && targetQube.properties["provides_network"] != "True" {
                throw StoreError(.qubesValueError, "The \(target) qube does not provide network")
            }
            if createsLoop(via: target, for: owner) {
                throw StoreError(.qubesPropertyValueError, "Loops in network are unsupported")
            }
        default:
            break
        }
    }

    /// Whether making `target` the netvm of `owner` (or the global default
    /// netvm when `owner` is `nil`) would create a cycle.
    private func createsLoop(via target: String, for owner: Domain?) -> Bool {
        var changed = self
        if let owner {
            changed.update(owner.name) { $0.properties["netvm"] = target }
        } else {
            changed.globalProperties["default_netvm"] = target
        }
        for start in (owner.map { [$0] } ?? changed.domains) {
            var visited: Set<ExactString> = [ExactString(start.name)]
            var current = changed.effectiveNetVM(of: start.name)
            while let hop = current {
                guard visited.insert(ExactString(hop)).inserted else { return true }
                current = changed.effectiveNetVM(of: hop)
            }
        }
        return false
    }

    /// qubesd's reactions to a property change: GUI/audio tags, the
    /// `servicevm` feature of network providers.
    private mutating func afterChange(of property: String, on qube: String) throws {
        guard let domain = self[qube] else { return }
        switch property {
        case "guivm", "audiovm":
            let prefix = property + "-"
            let target = effectiveReference(property, of: domain)
            update(qube) { domain in
                for tag in domain.tags where tag.value.hasPrefix(prefix) { domain.tags.remove(tag) }
                if let target { domain.tags.append(ExactString(prefix + target)) }
            }
        case "provides_network" where domain.properties["provides_network"] == "True":
            update(qube) { $0.features["servicevm"] = "1" }
        default:
            break
        }
    }
}
