import OrderedCollections

/// How qube references and inherited values resolve when not explicit.
extension Store {
    /// The qube `domain`'s template, if it has one.
    public func template(of domain: Domain) -> Domain? {
        guard domain.vmClass.hasTemplate, let name = domain.properties["template"], !name.isEmpty else { return nil }
        return self[name]
    }

    /// Walks `domain` and its templates (at most 16 hops) and returns the
    /// first explicit value of `property`.
    func inherited(_ property: String, of domain: Domain) -> String? {
        var current: Domain? = domain
        var hops = 0
        while let qube = current, hops < 16 {
            if let value = qube.properties[property] { return value }
            current = template(of: qube)
            hops += 1
        }
        return nil
    }

    /// A global qube reference: explicit (empty = none) or its default.
    public func globalReference(_ property: String) -> String? {
        if let value = globalProperties[property] { return value.isEmpty ? nil : value }
        switch property {
        case "default_guivm", "default_audiovm": return adminVM?.name ?? "dom0"
        default: return nil
        }
    }

    /// The properties qubesd mirrors in a tag naming the effective qube, with
    /// the tag's prefix (`guivm-<qube>`).
    public static let derivedTags = [(property: "guivm", prefix: "guivm-"), (property: "audiovm", prefix: "audiovm-")]

    /// The tags of `domain` as qubesd keeps them on load: for each of
    /// `derivedTags` whose tag for the effective qube is missing, the tags of
    /// that prefix are replaced by it.
    public func maintainedTags(of domain: Domain) -> OrderedSet<ExactString> {
        var tags = domain.tags
        for (property, prefix) in Self.derivedTags {
            guard let target = effectiveReference(property, of: domain) else { continue }
            let wanted = ExactString(prefix + target)
            guard !tags.contains(wanted) else { continue }
            tags.removeAll { $0.value.hasPrefix(prefix) }
            tags.append(wanted)
        }
        return tags
    }

    /// The effective netvm of the qube called `name` (`nil` = none).
    public func effectiveNetVM(of name: String) -> String? {
        guard let domain = self[name] else { return nil }
        return effectiveReference("netvm", of: domain)
    }

    /// The effective value of a qube-reference property of `domain`
    /// (explicit, else its default; `nil` = none).
    public func effectiveReference(_ property: String, of domain: Domain) -> String? {
        guard Schema.isQubeReference(property, of: domain.vmClass) else { return nil }
        if let value = domain.properties[property] { return value.isEmpty ? nil : value }
        switch property {
        case "netvm":
            if domain.vmClass == .templateVM { return nil }
            if domain.vmClass == .dispVM, let template = template(of: domain) {
                return effectiveReference("netvm", of: template)
            }
            return globalReference("default_netvm")
        case "guivm": return globalReference("default_guivm")
        case "audiovm": return globalReference("default_audiovm")
        case "default_dispvm":
            if domain.vmClass == .dispVM, let template = template(of: domain) { return template.name }
            return globalReference("default_dispvm")
        case "management_dispvm":
            if let template = template(of: domain) { return effectiveReference("management_dispvm", of: template) }
            return globalReference("management_dispvm")
        default:
            return nil
        }
    }

    /// The effective kernel: explicit, else the template's, else global `default_kernel`.
    public func effectiveKernel(of domain: Domain) -> String? {
        inherited("kernel", of: domain) ?? globalProperties["default_kernel"]
    }
}
