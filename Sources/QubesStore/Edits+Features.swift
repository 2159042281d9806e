/// Features, tags, devices and labels, with the checks qubesd applies to their Admin API calls
/// (docs/qubes-xml.md, "Features, tags and devices"; docs/admin-api.md, "Devices").
extension Store {
    /// Features only qubesd itself may change.
    static let protectedFeatures: Set<String> = [
        "preload-dispvm", "preload-dispvm-completed", "preload-dispvm-in-progress", "deferred-netvm-original",
    ]

    /// Sets a feature as `admin.vm.feature.Set` does.
    public mutating func setFeature(_ name: String, to value: String, of qube: String) throws {
        _ = try existing(qube)
        if let problem = AdminAPIRules.featureProblem(name: name, value: value) {
            throw StoreError(.protocolError, problem, qube: qube, field: "features.\(name)", value: value)
        }
        guard !Self.protectedFeatures.contains(name) else {
            throw StoreError(
                .permissionDenied, "changing this feature is prohibited by qubes.ext.admin.AdminExtension", qube: qube,
                field: "features.\(name)")
        }
        update(qube) { domain in
            domain.features[ExactString(name)] = value
            if name == "service.meminfo-writer" && (value.isEmpty || value == "0") { domain.properties["maxmem"] = "0" }
        }
    }

    /// Removes a feature; it must be set.
    public mutating func removeFeature(_ name: String, of qube: String) throws {
        guard try existing(qube).features[ExactString(name)] != nil else {
            throw StoreError(.qubesFeatureNotFoundError, "Feature not set for domain \(qube): \(name)", qube: qube, field: "features.\(name)")
        }
        update(qube) { _ = $0.features.removeValue(forKey: ExactString(name)) }
    }

    /// Adds a tag (idempotent).
    public mutating func addTag(_ tag: String, to qube: String, by source: String = "dom0") throws {
        _ = try existing(qube)
        try Self.checkTag(tag, qube: qube, source: source)
        update(qube) { _ = $0.tags.append(ExactString(tag)) }
    }

    /// Removes a tag; it must be set.
    public mutating func removeTag(_ tag: String, from qube: String, by source: String = "dom0") throws {
        let domain = try existing(qube)
        try Self.checkTag(tag, qube: qube, source: source)
        guard domain.tags.contains(ExactString(tag)) else {
            throw StoreError(.qubesTagNotFoundError, "Tag not set for domain \(qube): \(tag)", qube: qube, field: "tags", value: tag)
        }
        update(qube) { _ = $0.tags.remove(ExactString(tag)) }
    }

    static func checkTag(_ tag: String, qube: String, source: String) throws {
        guard AdminAPIRules.isValidTag(tag) else {
            throw StoreError(.qubesInvalidTagError, "disallowed characters", qube: qube, field: "tags", value: tag)
        }
        if tag.hasPrefix("created-by-") && source != "dom0" {
            throw StoreError(
                .permissionDenied, "changing this tag is prohibited by qubes.ext.admin.AdminExtension", qube: qube,
                field: "tags", value: tag)
        }
    }

    // MARK: - Devices

    /// Assigns a device as `admin.vm.device.<class>.Assign` does.
    public mutating func assignDevice(_ assignment: DeviceAssignment, deviceClass: String, to qube: String) throws {
        _ = try existing(qube)
        guard Loader.deviceClasses.contains(deviceClass) else {
            throw StoreError(.protocolError, "no such device class: '\(deviceClass)'", qube: qube, value: deviceClass)
        }
        guard assignment.mode.isAutoAttachable else {
            throw StoreError(.assertionError, "only auto-attachable modes can be assigned", qube: qube, value: assignment.mode.rawValue)
        }
        if let backend = assignment.backendDomain { _ = try existing(backend) }
        let description = "\(deviceClass) device \(assignment.backendDomain ?? "*"):\(assignment.port):\(assignment.identity)"
        if self[qube]?.devices[deviceClass]?.contains(where: { $0.sameDevice(as: assignment) }) == true {
            throw StoreError(.deviceAlreadyAssigned, "'\(description) already assigned to \(qube)'", qube: qube, field: "devices.\(deviceClass)")
        }
        update(qube) { $0.devices[deviceClass, default: []].append(assignment) }
    }

    /// Removes a device assignment; it must exist.
    public mutating func unassignDevice(_ assignment: DeviceAssignment, deviceClass: String, from qube: String) throws {
        let domain = try existing(qube)
        guard let index = domain.devices[deviceClass]?.firstIndex(where: { $0.sameDevice(as: assignment) }) else {
            let description = "\(deviceClass) device \(assignment.backendDomain ?? "*"):\(assignment.port):\(assignment.identity)"
            throw StoreError(.deviceNotAssigned, "'\(description) not assigned to \(qube)'", qube: qube, field: "devices.\(deviceClass)")
        }
        update(qube) { _ = $0.devices[deviceClass]?.remove(at: index) }
    }
}

extension DeviceAssignment {
    /// Same backend, port and identity (options and mode aside).
    public func sameDevice(as other: DeviceAssignment) -> Bool {
        backendDomain == other.backendDomain && port == other.port && identity == other.identity
    }
}

extension Store {
    /// The index of a label given as name, `label-N` or index.
    /// - Throws: `QubesLabelNotFoundError`.
    public func labelIndex(_ label: String) throws -> Int {
        let name = try PropertySetter.labelName(label, in: self)
        guard let found = self.label(named: name) else {
            throw StoreError(.qubesLabelNotFoundError, "Label does not exist: \(label)", value: label)
        }
        return found.index
    }
}
