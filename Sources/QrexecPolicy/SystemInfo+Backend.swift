import QubesAdmin

extension SystemInfo {
    /// The system as a running qubesd reports it through the Admin API:
    /// classes and power states, tags, disposable templates and the
    /// effective `default_dispvm` of every qube, a remote qube's relay and transport.
    public init(backend: Backend) throws {
        var qubes: [QubeInfo] = []
        for qube in try backend.qubes() {
            let isAdmin = qube.vmClass == .adminVM
            func value(_ property: String) -> String? { try? backend.property(property, of: qube.name).value }
            let hasTemplateForDispVMs = qube.vmClass.canBeDispVMTemplate
            let defaultDispVM = value("default_dispvm").flatMap { $0.isEmpty ? nil : $0 }
            let isRemote = qube.vmClass == .remoteVM
            let relay = isRemote ? value("relayvm").flatMap { $0.isEmpty ? nil : $0 } : nil
            let transport = isRemote ? value("transport_rpc").flatMap { $0.isEmpty ? nil : $0 } : nil
            qubes.append(
                QubeInfo(
                    name: qube.name, type: qube.vmClass.rawValue, tags: try backend.tags(of: qube.name),
                    templateForDispVMs: hasTemplateForDispVMs && value("template_for_dispvms") == "True",
                    defaultDispVM: defaultDispVM, powerState: qube.state.rawValue, uuid: qube.uuid,
                    isInternal: !isAdmin && !((try? backend.feature("internal", of: qube.name)) ?? "").isEmpty,
                    relayVM: relay, transportRPC: transport))
        }
        try self.init(qubes: qubes)
    }
}
