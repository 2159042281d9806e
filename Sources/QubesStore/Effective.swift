import LQCommon
/// Facts about the host that some defaults depend on, passed in as a value
/// so effective values are a pure function of the store and the host.
public struct HostFacts: Sendable, Hashable {
    /// Host memory in MiB, the global `maxmem`.
    public var memoryMiB: Int
    /// Number of CPUs, the global `no_cpus`.
    public var cpuCount: Int
    /// Whether the hypervisor can be asked (online); offline, defaults that
    /// need it are errors, as in qubesd without Xen.
    public var hypervisorAvailable: Bool
    /// `default-kernelopts-pci.txt` / `-nopci.txt` of a kernel, when present.
    public var kernelOptions: @Sendable (_ kernel: String, _ withPCI: Bool) -> String?

    public init(
        memoryMiB: Int, cpuCount: Int, hypervisorAvailable: Bool,
        kernelOptions: @escaping @Sendable (String, Bool) -> String? = { _, _ in nil }
    ) {
        self.memoryMiB = memoryMiB
        self.cpuCount = cpuCount
        self.hypervisorAvailable = hypervisorAvailable
        self.kernelOptions = kernelOptions
    }

    /// The stand-ins qubesd shows when it runs without Xen (docs/qubes-xml.md, "Host-dependent values").
    public static let offline = HostFacts(memoryMiB: 18_014_398_509_481_983, cpuCount: 42, hypervisorAvailable: false)

    public static func == (lhs: HostFacts, rhs: HostFacts) -> Bool {
        lhs.memoryMiB == rhs.memoryMiB && lhs.cpuCount == rhs.cpuCount && lhs.hypervisorAvailable == rhs.hypervisorAvailable
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(memoryMiB)
        hasher.combine(cpuCount)
    }
}

/// What reading a property returns: a value, or the error qubesd raises.
public typealias EffectiveValue = Result<JSONValue, StoreError>

/// Effective (default-resolved) property values, as reading them in qubesd
/// returns them (docs/qubes-xml.md, "Properties", "Derived network addresses", "Effective values").
public struct EffectiveProperties {
    public let store: Store
    public let host: HostFacts

    public init(store: Store, host: HostFacts = .offline) {
        self.store = store
        self.host = host
    }

    static let offlineError = StoreError(.qubesException, "VMM operations disabled in offline mode")

    static func noDefault(_ property: String) -> StoreError {
        StoreError(.attributeError, "property '\(property)' have no default")
    }

    // MARK: - Global

    /// Every global property and its effective value.
    public func global() -> [String: EffectiveValue] {
        var values: [String: EffectiveValue] = [:]
        for (name, spec) in Schema.global {
            values[name] = globalValue(name, spec: spec)
        }
        return values
    }

    private func globalValue(_ name: String, spec: PropertySpec) -> EffectiveValue {
        let explicit = store.globalProperties[name]
        switch name {
        case "maxmem": return .success(.integer(String(host.memoryMiB)))
        case "no_cpus": return .success(.integer(String(host.cpuCount)))
        case "check_updates_vm": return .success(.bool((explicit ?? "True") == "True"))
        case "default_qrexec_timeout", "default_shutdown_timeout": return .success(.integer(explicit ?? "60"))
        case "stats_interval": return .success(.integer(explicit ?? "3"))
        case "default_kernel", "default_template":
            guard let explicit else { return .failure(Self.noDefault(name)) }
            if store.noneGlobalProperties.contains(name) { return .success(.null) }
            return .success(name == "default_template" && explicit.isEmpty ? .null : .string(explicit))
        case "default_pool", "default_pool_kernel", "default_pool_private", "default_pool_root", "default_pool_volatile":
            let pool = name == "default_pool" ? store.defaultPool : store.defaultPool(forVolume: String(name.dropFirst(13)))
            guard let pool else { return .failure(StoreError(.attributeError, "Cannot determine default storage pool")) }
            return .success(.string(pool))
        default:
            return .success(.string(store.globalReference(name)))
        }
    }

    // MARK: - Qubes

    /// Every property of `domain`'s class and its effective value.
    public func values(of domain: Domain) -> [String: EffectiveValue] {
        var values: [String: EffectiveValue] = [:]
        for name in Schema.properties(of: domain.vmClass).keys {
            values[name] = value(name, of: domain)
        }
        return values
    }

    /// The effective value of one property of `domain`.
    public func value(_ name: String, of domain: Domain) -> EffectiveValue {
        let explicit = domain.explicitProperties[name]
        let kind = Schema.property(name, of: domain.vmClass)?.kind
        if let explicit, kind != .readOnly {
            return .success(domain.noneProperties.contains(name) ? .null : typed(explicit, kind: kind))
        }
        switch name {
        case "name": return .success(.string(domain.name))
        case "qid": return .success(.integer(String(domain.qid)))
        case "uuid": return .success(.string(domain.uuid))
        case "klass": return .success(.string(domain.vmClass.rawValue))
        case "label": return .failure(Self.noDefault("label"))
        case "icon": return icon(of: domain)
        case "updateable": return .success(.bool([.adminVM, .templateVM, .standaloneVM].contains(domain.vmClass)))
        case "include_in_backups":
            switch domain.vmClass {
            case .remoteVM: return .success(.bool(false))
            case .dispVM: return .success(.bool(domain.properties["auto_cleanup"] != "True"))
            default: return .success(.bool(true))
            }
        case "devices_denied": return .success(.string(""))
        case "keyboard_layout": return .success(.string(keyboardLayout(of: domain)))
        case "maxmem": return maxmem(of: domain)
        case "auto_cleanup", "autostart", "debug", "installed_by_rpm", "provides_network", "template_for_dispvms":
            return .success(.bool(false))
        case "backup_timestamp", "stubdom_mem", "start_time", "remote_name", "transport_rpc":
            return .success(.null)
        case "xid", "stubdom_xid": return .success(.integer("-1"))
        case "stubdom_uuid": return .success(.string(""))
        case "mac": return .success(.string("00:16:3e:5e:6c:00"))
        case "memory": return .success(.integer(store.inherited("memory", of: domain) ?? "400"))
        case "vcpus": return .success(.integer(store.inherited("vcpus", of: domain) ?? "2"))
        case "default_user": return .success(.string(store.inherited("default_user", of: domain) ?? "user"))
        case "qrexec_timeout", "shutdown_timeout":
            let global = store.globalProperties["default_" + name] ?? "60"
            return .success(.integer(store.inherited(name, of: domain) ?? global))
        case "kernel":
            guard let kernel = store.effectiveKernel(of: domain) else { return .failure(Self.noDefault("default_kernel")) }
            return .success(kernelIsNone(domain) ? .null : .string(kernel))
        case "kernelopts": return kernelopts(of: domain)
        case "virt_mode": return .success(.string(virtMode(of: domain)))
        case "bootmode": return .success(.string(bootmode(of: domain)))
        case "appvm_default_bootmode":
            return .success(.string(domain.features["boot-mode.appvm-default"] ?? "default"))
        case "template": return .failure(Self.noDefault("template"))
        case "dispid": return .failure(Self.noDefault("dispid"))
        case "is_preload": return .success(.bool(isPreload(domain)))
        case "ip": return ip(of: domain).map(JSONValue.string)
        case "ip6": return .success(.string(ip6(of: domain)))
        case "visible_ip": return visibleIP(of: domain).map(JSONValue.string)
        case "visible_ip6": return .success(.string(feature("net.fake-ip6", of: domain) ?? ip6(of: domain)))
        case "gateway":
            guard isTrue(domain.properties["provides_network"]) else { return .success(.null) }
            return visibleIP(of: domain).map(JSONValue.string)
        case "gateway6":
            guard isTrue(domain.properties["provides_network"]) else { return .success(.null) }
            return .success(.string(feature("net.fake-ip6", of: domain) ?? ip6(of: domain)))
        case "visible_gateway":
            if let fake = feature("net.fake-gateway", of: domain) { return .success(.string(fake)) }
            guard let netvm = netvm(of: domain) else { return .success(.null) }
            return value("gateway", of: netvm)
        case "visible_gateway6":
            if let fake = feature("net.fake-gateway6", of: domain) { return .success(.string(fake)) }
            guard let netvm = netvm(of: domain) else { return .success(.null) }
            return value("gateway6", of: netvm)
        case "visible_netmask":
            if let fake = feature("net.fake-netmask", of: domain) { return .success(.string(fake)) }
            return .success(netvm(of: domain) == nil ? .null : .string("255.255.255.255"))
        case "dns":
            guard netvm(of: domain) != nil || isTrue(domain.properties["provides_network"]) else { return .success(.null) }
            return .success(.array([.string("10.139.1.1"), .string("10.139.1.2")]))
        default:
            if Schema.isQubeReference(name, of: domain.vmClass) {
                return .success(.string(store.effectiveReference(name, of: domain)))
            }
            return .failure(Self.noDefault(name))
        }
    }

    /// The JSON form of a saved text of a property of `kind`.
    private func typed(_ text: String, kind: PropertyKind?) -> JSONValue {
        switch kind {
        case .bool?: .bool(text == "True")
        case .int?, .positiveInt?, .nonNegativeInt?, .qid?: .integer(text)
        case .qubeRef?: text.isEmpty ? .null : .string(text)
        default: .string(text)
        }
    }

    private func isTrue(_ text: String?) -> Bool { text == "True" }

    private func netvm(of domain: Domain) -> Domain? {
        store.effectiveReference("netvm", of: domain).flatMap { store[$0] }
    }

    /// A feature of the qube or, failing that, of its templates (`check_with_template`).
    private func feature(_ name: ExactString, of domain: Domain) -> String? {
        var current: Domain? = domain
        var hops = 0
        while let qube = current, hops < 16 {
            if let value = qube.features[name] { return value }
            current = store.template(of: qube)
            hops += 1
        }
        return nil
    }

    private func isNetworked(_ domain: Domain) -> Bool {
        isTrue(domain.properties["provides_network"]) || netvm(of: domain) != nil
    }

    private func icon(of domain: Domain) -> EffectiveValue {
        if domain.vmClass == .adminVM { return .success(.string("adminvm-black")) }
        guard let label = domain.properties["label"] else { return .failure(Self.noDefault("label")) }
        let prefix: String
        if domain.properties["template_for_dispvms"] == "True" || domain.vmClass == .templateVM {
            prefix = "templatevm"
        } else if let servicevm = domain.features["servicevm"], !servicevm.isEmpty {
            prefix = "servicevm"
        } else {
            switch domain.vmClass {
            case .dispVM: prefix = "dispvm"
            case .standaloneVM: prefix = "standalonevm"
            case .remoteVM: prefix = "remotevm"
            default: prefix = "appvm"
            }
        }
        return .success(.string(prefix + "-" + label))
    }

    private func keyboardLayout(of domain: Domain) -> String {
        guard domain.vmClass != .adminVM,
            let guivm = store.effectiveReference("guivm", of: domain).flatMap({ store[$0] }), guivm.qid != domain.qid
        else { return "us++" }
        if guivm.vmClass == .adminVM { return guivm.properties["keyboard_layout"] ?? "us++" }
        if case .success(.string(let layout)) = value("keyboard_layout", of: guivm) { return layout }
        return "us++"
    }

    private func virtMode(of domain: Domain) -> String {
        if let explicit = domain.properties["virt_mode"] { return explicit }
        if domain.hasPCIDevices { return "hvm" }
        if let template = store.template(of: domain) { return virtMode(of: template) }
        return "pvh"
    }

    private func bootmode(of domain: Domain) -> String {
        if let template = store.template(of: domain), let mode = feature("boot-mode.appvm-default", of: template) {
            return mode
        }
        return "default"
    }

    private func maxmem(of domain: Domain) -> EffectiveValue {
        if domain.vmClass == .adminVM { return .success(.integer("4096")) }
        if domain.hasPCIDevices { return .success(.integer("0")) }
        if let template = store.template(of: domain) { return maxmem(of: template) }
        guard host.hypervisorAvailable else { return .failure(Self.offlineError) }
        let memory = Int(store.inherited("memory", of: domain) ?? "400") ?? 400
        let cap = domain.features["os"] == "Linux" ? memory * 10 : 4000
        return .success(.integer(String(min(cap, host.memoryMiB / 2))))
    }

    private func kernelopts(of domain: Domain) -> EffectiveValue {
        guard let kernel = store.effectiveKernel(of: domain) else { return .failure(Self.noDefault("default_kernel")) }
        if kernel.isEmpty || kernelIsNone(domain) { return .success(.string("")) }
        if domain.hasPCIDevices { return .success(.string(host.kernelOptions(kernel, true) ?? "")) }
        if let template = store.template(of: domain) { return value("kernelopts", of: template) }
        return .success(.string(host.kernelOptions(kernel, false) ?? "swiotlb=2048"))
    }

    /// Whether the effective kernel is the global `default_kernel` set to no value.
    private func kernelIsNone(_ domain: Domain) -> Bool {
        store.inherited("kernel", of: domain) == nil && store.noneGlobalProperties.contains("default_kernel")
    }

    private func isPreload(_ domain: Domain) -> Bool {
        guard let template = store.template(of: domain), let list = template.features["preload-dispvm"] else { return false }
        return list.split(separator: " ").contains { $0.utf8.elementsEqual(domain.name.utf8) }
    }

    /// `prefix.x.y` from an id (docs/qubes-xml.md, "Derived network addresses").
    static func address(_ prefix: String, _ id: Int) -> Result<String, StoreError> {
        let text: String
        if id < 255 {
            text = "\(prefix).\((id >> 8) & 255).\(id & 255)"
        } else {
            let shifted = id - 1
            text = "\(prefix).\(shifted / 254).\(shifted % 254 + 1)"
        }
        return ValueParsers.ipv4(text)
    }

    private func ip(of domain: Domain) -> Result<String?, StoreError> {
        if let explicit = domain.properties["ip"] { return .success(explicit) }
        guard isNetworked(domain) else { return .success(nil) }
        if domain.vmClass == .dispVM {
            guard let dispid = domain.properties["dispid"].flatMap(Int.init) else {
                return .failure(Self.noDefault("dispid"))
            }
            return Self.address("10.138", dispid).map { $0 }
        }
        return Self.address("10.137", domain.qid).map { $0 }
    }

    private func visibleIP(of domain: Domain) -> Result<String?, StoreError> {
        if let fake = feature("net.fake-ip", of: domain) { return .success(fake) }
        return ip(of: domain)
    }

    private func ip6(of domain: Domain) -> String? {
        if let explicit = domain.properties["ip6"] { return explicit }
        guard isNetworked(domain), ipv6Enabled(domain) else { return nil }
        if domain.vmClass == .dispVM {
            guard let dispid = domain.properties["dispid"].flatMap(Int.init) else { return nil }
            return "fd09:24ef:4179::a8a:" + String(dispid, radix: 16)
        }
        return "fd09:24ef:4179::a89:" + String(domain.qid, radix: 16)
    }

    /// Feature `ipv6` on the qube or the first qube along its netvm chain that has it.
    private func ipv6Enabled(_ domain: Domain) -> Bool {
        var current: Domain? = domain
        var hops = 0
        while let qube = current, hops < 64 {
            if let value = qube.features["ipv6"] { return !value.isEmpty }
            current = netvm(of: qube)
            hops += 1
        }
        return false
    }
}
