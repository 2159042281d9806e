import QubesStore

/// A `Backend` that talks to qubesd over its Admin API socket, sending the
/// bytes the `qvm-*` tools send.
public final class AdminAPIBackend: Backend {
    public let transport: AdminTransport
    /// The calling qube (`dom0` for tools running in dom0).
    public let source: String

    public init(transport: AdminTransport = AdminTransport(), source: String = "dom0") {
        self.transport = transport
        self.source = source
    }

    /// Calls a method and returns the success body as text.
    @discardableResult
    public func call(_ method: String, _ argument: String = "", on destination: String = "dom0", payload: String = "") throws -> String {
        let request = AdminRequest(
            method: method, argument: argument, source: source, destination: destination, payload: Array(payload.utf8))
        return try transport.send(request).text(call: request.call)
    }

    private func lines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    private func keyValues(_ text: String) -> [(key: String, value: String)] {
        lines(text).map { line in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }

    private func propertyPrefix(_ qube: String?) -> String { qube == nil ? "admin.property." : "admin.vm.property." }

    // MARK: Qubes

    public func qubes() throws -> [QubeSummary] {
        try lines(call("admin.vm.List")).map { line in
            let fields = line.split(separator: " ").map(String.init)
            var values: [String: String] = [:]
            for field in fields.dropFirst() {
                let parts = field.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
            }
            guard let name = fields.first, let vmClass = values["class"].flatMap(VMClass.init(rawValue:)),
                let state = PowerState(rawValue: values["state"] ?? "NA")
            else {
                throw AdminError.malformedReply(call: "admin.vm.List", detail: "line '\(line)'")
            }
            return QubeSummary(name: name, vmClass: vmClass, state: state, uuid: values["uuid"] ?? "")
        }
    }

    public func create(_ qube: Store.NewQube) throws {
        var payload = "name=\(qube.name) label=\(qube.label)"
        if let pool = qube.pool { payload += " pool=\(pool)" }
        for (volume, pool) in qube.pools.sorted(by: { $0.key < $1.key }) { payload += " pool:\(volume)=\(pool)" }
        let inPool = qube.pool != nil || !qube.pools.isEmpty
        let method = (inPool ? "admin.vm.CreateInPool." : "admin.vm.Create.") + qube.vmClass.rawValue
        try call(method, qube.template ?? "", payload: payload)
    }

    public func remove(_ qube: String) throws { try call("admin.vm.Remove", on: qube) }

    // MARK: Properties

    public func propertyNames(of qube: String?) throws -> [String] {
        try lines(call(propertyPrefix(qube) + "List", on: qube ?? "dom0"))
    }

    public func property(_ name: String, of qube: String?) throws -> PropertyValue {
        let text = try call(propertyPrefix(qube) + "Get", name, on: qube ?? "dom0")
        guard let value = PropertyValue(wireText: text) else {
            throw AdminError.malformedReply(call: propertyPrefix(qube) + "Get+" + name, detail: "'\(text)'")
        }
        return value
    }

    public func allProperties(of qube: String?) throws -> [(name: String, value: PropertyValue)] {
        try lines(call(propertyPrefix(qube) + "GetAll", on: qube ?? "dom0")).map { line in
            guard let entry = PropertyValue.parseGetAllLine(line) else {
                throw AdminError.malformedReply(call: propertyPrefix(qube) + "GetAll", detail: "'\(line)'")
            }
            return entry
        }
    }

    public func propertyDefault(_ name: String, of qube: String?) throws -> PropertyValue? {
        let text = try call(propertyPrefix(qube) + "GetDefault", name, on: qube ?? "dom0")
        if text.isEmpty { return nil }
        guard let value = PropertyValue(wireText: "default=True " + text) else {
            throw AdminError.malformedReply(call: propertyPrefix(qube) + "GetDefault+" + name, detail: "'\(text)'")
        }
        return value
    }

    public func setProperty(_ name: String, of qube: String?, to value: String) throws {
        try call(propertyPrefix(qube) + "Set", name, on: qube ?? "dom0", payload: value)
    }

    public func resetProperty(_ name: String, of qube: String?) throws {
        try call(propertyPrefix(qube) + "Reset", name, on: qube ?? "dom0")
    }

    // MARK: Features, tags

    public func features(of qube: String) throws -> [String] { try lines(call("admin.vm.feature.List", on: qube)) }
    public func feature(_ name: String, of qube: String) throws -> String { try call("admin.vm.feature.Get", name, on: qube) }
    public func setFeature(_ name: String, to value: String, of qube: String) throws {
        try call("admin.vm.feature.Set", name, on: qube, payload: value)
    }
    public func removeFeature(_ name: String, of qube: String) throws { try call("admin.vm.feature.Remove", name, on: qube) }

    public func tags(of qube: String) throws -> [String] { try lines(call("admin.vm.tag.List", on: qube)) }
    public func hasTag(_ tag: String, on qube: String) throws -> Bool { try call("admin.vm.tag.Get", tag, on: qube) == "1" }
    public func addTag(_ tag: String, to qube: String) throws { try call("admin.vm.tag.Set", tag, on: qube) }
    public func removeTag(_ tag: String, from qube: String) throws { try call("admin.vm.tag.Remove", tag, on: qube) }

    // MARK: Labels, pools, volumes

    public func labels() throws -> [String] { try lines(call("admin.label.List")) }
    public func labelColor(_ label: String) throws -> String { try call("admin.label.Get", label) }
    public func pools() throws -> [String] { try lines(call("admin.pool.List")) }
    public func poolInfo(_ pool: String) throws -> [(key: String, value: String)] { try keyValues(call("admin.pool.Info", pool)) }
    public func volumes(of qube: String) throws -> [String] { try lines(call("admin.vm.volume.List", on: qube)) }
    public func volumeInfo(_ volume: String, of qube: String) throws -> [(key: String, value: String)] {
        try keyValues(call("admin.vm.volume.Info", volume, on: qube))
    }
    public func setVolumeReadWrite(_ volume: String, of qube: String, to readWrite: Bool) throws {
        try call("admin.vm.volume.Set.rw", volume, on: qube, payload: readWrite ? "True" : "False")
    }

    public func cloneVolume(_ volume: String, from source: String, to target: String) throws {
        let token = try call("admin.vm.volume.CloneFrom", volume, on: source)
        try call("admin.vm.volume.CloneTo", volume, on: target, payload: token)
    }

    public func resizeVolume(_ volume: String, of qube: String, to size: Int64) throws {
        try call("admin.vm.volume.Resize", volume, on: qube, payload: String(size))
    }

    // MARK: Devices

    public func availableDevices(of backend: String, deviceClass: String) throws
        -> [(port: String, identity: String, properties: [(key: String, value: String)])]
    {
        try lines(call("admin.vm.device.\(deviceClass).Available", on: backend)).map { line in
            guard let space = line.firstIndex(of: " "), let colon = line[..<space].firstIndex(of: ":"),
                let properties = DeviceWire.parseSerialization(String(line[line.index(after: space)...]))
            else { throw AdminError.malformedReply(call: "admin.vm.device.\(deviceClass).Available", detail: "'\(line)'") }
            return (String(line[..<colon]), String(line[line.index(after: colon)..<space]), properties)
        }
    }

    public func assignedDevices(of qube: String, deviceClass: String) throws -> [DeviceAssignment] {
        try lines(call("admin.vm.device.\(deviceClass).Assigned", on: qube)).map { line in
            guard let space = line.firstIndex(of: " "),
                let device = DeviceWire.assignment(fromSerialization: String(line[line.index(after: space)...]))
            else { throw AdminError.malformedReply(call: "admin.vm.device.\(deviceClass).Assigned", detail: "'\(line)'") }
            return device
        }
    }

    public func assign(_ device: DeviceAssignment, deviceClass: String, to qube: String) throws {
        try call(
            "admin.vm.device.\(deviceClass).Assign", DeviceWire.argument(device), on: qube,
            payload: DeviceWire.serialization(device, deviceClass: deviceClass, frontend: qube))
    }

    public func unassign(_ device: DeviceAssignment, deviceClass: String, from qube: String) throws {
        try call("admin.vm.device.\(deviceClass).Unassign", DeviceWire.argument(device), on: qube)
    }

    // MARK: Power

    public func powerState(of qube: String) throws -> String {
        let state = try call("admin.vm.CurrentState", on: qube)
        for field in state.split(separator: " ") where field.hasPrefix("power_state=") { return String(field.dropFirst(12)) }
        throw AdminError.malformedReply(call: "admin.vm.CurrentState", detail: "'\(state)'")
    }

    public func start(_ qube: String) throws { try call("admin.vm.Start", on: qube) }
    public func shutdown(_ qube: String, force: Bool, wait: Bool) throws {
        try call("admin.vm.Shutdown", [force ? "force" : nil, wait ? "wait" : nil].compactMap { $0 }.joined(separator: "+"), on: qube)
    }
    public func kill(_ qube: String) throws { try call("admin.vm.Kill", on: qube) }

    public func batch<Result>(_ body: () throws -> Result) throws -> Result { try body() }
}
