import QubesAdmin

extension SystemInfo {
    /// The system as a running qubesd reports it through the Admin API:
    /// classes and power states, tags, disposable templates and the
    /// effective `default_dispvm` of every qube.
    public init(backend: Backend) throws {
        var qubes: [QubeInfo] = []
        for qube in try backend.qubes() {
            let isAdmin = qube.vmClass == .adminVM
            func value(_ property: String) -> String? { try? backend.property(property, of: qube.name).value }
            let hasTemplateForDispVMs = qube.vmClass.canBeDispVMTemplate
            let defaultDispVM = value("default_dispvm").flatMap { $0.isEmpty ? nil : $0 }
            qubes.append(
                QubeInfo(
                    name: qube.name, type: qube.vmClass.rawValue, tags: try backend.tags(of: qube.name),
                    templateForDispVMs: hasTemplateForDispVMs && value("template_for_dispvms") == "True",
                    defaultDispVM: defaultDispVM, powerState: qube.state.rawValue, uuid: qube.uuid,
                    isInternal: !isAdmin && !((try? backend.feature("internal", of: qube.name)) ?? "").isEmpty))
        }
        try self.init(qubes: qubes)
    }
}
