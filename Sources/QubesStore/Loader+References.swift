/// Stage 4 and `domain-load`: references, features, tags, devices, and what each qube's load event changes
/// (docs/qubes-xml.md, "Loading", "Changes a load makes").
extension Loader {
    mutating func loadDomainStage4(_ qid: Int) throws {
        guard var domain = store[qid: qid] else { return }
        for property in rawProperties[qid] ?? [] {
            guard let name = property.name, let spec = property.spec ?? Schema.property(name, of: domain.vmClass), spec.stage == .references else {
                continue
            }
            do {
                if spec.kind == .qubeRef {
                    domain.properties[name] = try PropertySetter.reference(property.value, name: name, owner: domain, in: store)
                } else {
                    domain.properties[name] = try PropertySetter.normalize(property.value, spec: spec, vmClass: domain.vmClass, labels: store)
                    if property.value == nil && spec.kind == .string {
                        domain.noneProperties.insert(name)
                    } else {
                        domain.noneProperties.remove(name)
                    }
                }
            } catch var error as StoreError {
                error.qube = error.qube ?? domain.name
                error.field = error.field ?? name
                if error.value == nil { error.value = property.value }
                throw located(error, property.offset)
            }
        }
        let element = elements[qid]
        if let element {
            try loadFeatures(element, into: &domain)
            try loadTags(element, into: &domain)
            try loadDevices(element, into: &domain)
        }
        store.update(domain.name) { $0 = domain }
    }

    func loadFeatures(_ element: XMLNode, into domain: inout Domain) throws {
        try Self.forEachElement(element, "features", "feature") { feature in
            guard let name = feature.attribute("name") else {
                throw located(
                    StoreError(.typeError, "can only concatenate str (not \"NoneType\") to str (feature without name)", qube: domain.name, field: "feature"),
                    feature.offset)
            }
            domain.features[ExactString(name)] = feature.text ?? ""
        }
    }

    func loadTags(_ element: XMLNode, into domain: inout Domain) throws {
        try Self.forEachElement(element, "tags", "tag") { tag in
            guard let name = tag.attribute("name") else {
                throw located(StoreError(.typeError, "'NoneType' object is not iterable (tag without name)", qube: domain.name, field: "tag"), tag.offset)
            }
            guard ValueParsers.isValidTag(name) else {
                throw located(StoreError(.valueError, "Invalid character in tag", qube: domain.name, field: "tag", value: name), tag.offset)
            }
            domain.tags.append(ExactString(name))
        }
    }

    /// Device classes qubesd loads (its device extensions); `usb` loads like
    /// `block` on a dom0 with the USB proxy installed.
    static let deviceClasses: Set<String> = ["pci", "block", "usb"]

    mutating func loadDevices(_ element: XMLNode, into domain: inout Domain) throws {
        for devices in element.children where devices.name == "devices" {
            let deviceClass = devices.attribute("class")
            for device in devices.children where device.name == "device" {
                var options: [(name: String?, value: String)] = []
                var identityOption: String?
                for option in device.children where option.name == "option" {
                    let name = option.attribute("name")
                    let value = option.text ?? "None"
                    if name == "identity" {
                        identityOption = value
                    } else {
                        options.append((name, value))
                    }
                }
                let mode: String
                if let required = device.attribute("required") {
                    guard let flag = ValueParsers.bool(required) else {
                        throw located(
                            StoreError(.qubesValueError, "Invalid literal for boolean property: '\(required)'", qube: domain.name, field: "device required", value: required),
                            device.offset)
                    }
                    mode = flag ? "required" : "auto-attach"
                } else {
                    mode = device.attribute("mode") ?? "required"
                }
                if mode == "manual" {
                    throw located(StoreError(.assertionError, "device mode 'manual' cannot be assigned", qube: domain.name, field: "device mode", value: mode), device.offset)
                }
                guard let assignmentMode = AssignmentMode(rawValue: mode), assignmentMode.isAutoAttachable else {
                    note(.error, "Unrecognized assignment mode, ignoring.", qube: domain.name, field: "devices.\(deviceClass ?? "None")", value: mode)
                    continue
                }
                let identity = identityOption ?? device.attribute("identity") ?? "*"
                let port = device.attribute("id") ?? "*"
                // qubesd looks a backend up only when the attribute is a non-empty name: an empty one means none.
                let backend = device.attribute("backend-domain").flatMap { $0.isEmpty ? nil : $0 }
                guard let deviceClass, Self.deviceClasses.contains(deviceClass), backend.map(store.contains) ?? true else {
                    note(
                        .info, "\(domain.name): Cannot find backend domain '\(backend ?? "None")' for device type \(deviceClass ?? "None") '\(port)'",
                        qube: domain.name, field: "devices.\(deviceClass ?? "None")", value: port)
                    continue
                }
                if deviceClass == "pci" && port != "*" && !Self.isPCIPort(port) {
                    throw located(StoreError(.valueError, "Invalid device identifier: '\(port)'", qube: domain.name, field: "device id", value: port), device.offset)
                }
                let assignment = DeviceAssignment(backendDomain: backend, port: port, identity: identity, mode: assignmentMode, options: options)
                var list = domain.devices[deviceClass] ?? []
                if list.contains(where: { $0.sameDevice(as: assignment) }) {
                    throw located(
                        StoreError(.assertionError, "device \(deviceClass) '\(port)' is assigned twice", qube: domain.name, field: "device", value: port),
                        device.offset)
                }
                list.append(assignment)
                domain.devices[deviceClass] = list
            }
        }
    }

    /// A PCI port id in path form (`00_14.3`, bridges joined by `-`) or BDF form (`0000:00:14.3`).
    static func isPCIPort(_ port: String) -> Bool {
        func isHex(_ text: Substring, _ count: Int) -> Bool {
            text.utf8.count == count && text.utf8.allSatisfy(ValueParsers.isHexDigit)
        }
        func isPathElement(_ text: Substring) -> Bool {
            let parts = text.split(separator: "_", omittingEmptySubsequences: false)
            guard parts.count == 2, isHex(parts[0], 2) else { return false }
            let deviceFunction = parts[1].split(separator: ".", omittingEmptySubsequences: false)
            return deviceFunction.count == 2 && isHex(deviceFunction[0], 2) && isHex(deviceFunction[1], 1)
        }
        if port.split(separator: "-", omittingEmptySubsequences: false).allSatisfy(isPathElement) { return true }
        var parts = port.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3 {
            guard isHex(parts[0], 4) else { return false }
            parts.removeFirst()
        }
        guard parts.count == 2, isHex(parts[0], 2) else { return false }
        let deviceFunction = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return deviceFunction.count == 2 && isHex(deviceFunction[0], 2) && isHex(deviceFunction[1], 1)
    }

    // MARK: - domain-load

    mutating func domainLoad(_ qid: Int, volumeBuilder: VolumeBuilder) throws {
        guard var domain = store[qid: qid] else { return }
        if domain.uuid.isEmpty {
            domain.uuid = options.randomUUID()
            note(.info, "qube had no uuid; a random one was assigned", qube: domain.name, field: "uuid", value: domain.uuid)
            store.update(domain.name) { $0.uuid = domain.uuid }
        }
        if domain.vmClass.hasVolumes {
            do {
                let volumes = try volumeBuilder.volumes(of: domain)
                store.update(domain.name) { $0.volumes = volumes }
            } catch var error as StoreError {
                error.qube = error.qube ?? domain.name
                throw located(error, elements[qid]?.offset ?? 0)
            }
        }
        breakNetVMLoop(domain.name)
        domain = store[qid: qid] ?? domain
        if domain.vmClass.hasTemplate && domain.properties["template"] == nil {
            throw located(StoreError(.attributeError, "property 'template' have no default", qube: domain.name, field: "template"), elements[qid]?.offset ?? 0)
        }
        if domain.properties["template_for_dispvms"] == "True" {
            removeAbsentPreloads(domain.name)
        }
        try maintainTags(domain.name)
    }

    mutating func breakNetVMLoop(_ name: String) {
        guard let netvm = store.effectiveNetVM(of: name) else { return }
        var message: String?
        if netvm == name {
            message = "vm '\(name)' network-connected to itself, breaking the connection"
        } else {
            var visited: Set<ExactString> = []
            var current: String? = netvm
            while let hop = current, visited.insert(ExactString(hop)).inserted {
                if hop == name {
                    message = "netvm loop detected on '\(name)', breaking the connection"
                    break
                }
                current = store.effectiveNetVM(of: hop)
            }
        }
        guard let message else { return }
        note(.error, message, qube: name, field: "netvm", value: netvm)
        store.update(name) { $0.properties["netvm"] = "" }
    }

    mutating func removeAbsentPreloads(_ name: String) {
        guard let value = store[name]?.features["preload-dispvm"] else { return }
        let entries = value.split(separator: " ").map(String.init)
        let absent = entries.filter { !store.contains($0) }
        guard !absent.isEmpty else { return }
        note(.info, "Removing absent preloaded qube(s): '\(absent.joined(separator: ", "))'", qube: name, field: "features.preload-dispvm", value: value)
        let kept = entries.filter { store.contains($0) }.joined(separator: " ")
        store.update(name) { $0.features["preload-dispvm"] = kept }
    }

    /// GUI and audio tags, and the `service.meminfo-writer` migration.
    mutating func maintainTags(_ name: String) throws {
        guard let domain = store[name], domain.vmClass.isQubesVM else { return }
        var updated = domain
        // Only a qube that changes is copied and written back.
        let tags = store.maintainedTags(of: domain)
        var changed = tags != domain.tags
        if changed { updated.tags = tags }
        if updated.features["service.meminfo-writer"] != nil,
            let meminfo = updated.features.removeValue(forKey: "service.meminfo-writer")
        {
            if meminfo.isEmpty { updated.properties["maxmem"] = "0" }
            note(.info, "feature service.meminfo-writer migrated", qube: name, field: "features.service.meminfo-writer", value: meminfo)
            changed = true
        }
        if changed { store.update(name) { $0 = updated } }
    }
}
