import LQCommon
import QubesStore

/// What the evaluator knows of one qube: the fields of qubesd's `internal.GetSystemInfo`.
public struct QubeInfo: Sendable, Hashable {
    public var name: String
    /// The class: `AdminVM`, `AppVM`, `TemplateVM`, `StandaloneVM`, `DispVM`, `RemoteVM`.
    public var type: String
    public var tags: [String]
    public var templateForDispVMs: Bool
    /// The effective `default_dispvm`, `nil` for none.
    public var defaultDispVM: String?
    /// `Running`, `Halted`, … (only `Running` counts for `autostart=no`).
    public var powerState: String
    /// Lower-case uuid without the `uuid:` prefix.
    public var uuid: String?
    /// The `internal` feature is set: never offered in an ask prompt.
    public var isInternal: Bool
    /// A `RemoteVM`'s relay qube: calls to it go there (docs/qrexec-policy.md, "Remote qubes").
    public var relayVM: String?
    /// A `RemoteVM`'s transport service, which the relay runs to reach it.
    public var transportRPC: String?

    public init(name: String, type: String = "AppVM", tags: [String] = [], templateForDispVMs: Bool = false,
                defaultDispVM: String? = nil, powerState: String = "Halted", uuid: String? = nil, isInternal: Bool = false,
                relayVM: String? = nil, transportRPC: String? = nil) {
        self.name = name
        self.type = type
        self.tags = tags
        self.templateForDispVMs = templateForDispVMs
        self.defaultDispVM = defaultDispVM
        self.powerState = powerState
        self.uuid = uuid
        self.isInternal = isInternal
        self.relayVM = relayVM
        self.transportRPC = transportRPC
    }
}

/// The qubes a policy is evaluated against, with lookups by name and `uuid:`.
public struct SystemInfo: Sendable {
    /// dom0's uuid.
    public static let adminVMUUID = "00000000-0000-0000-0000-000000000000"

    /// The qubes in the order given.
    public let qubes: [QubeInfo]
    private let byName: [ExactString: Int]
    private let byUUID: [ExactString: Int]

    /// - Throws: `PolicyError(.invalidInput)` when two qubes share a name.
    public init(qubes: [QubeInfo]) throws(PolicyError) {
        var byName: [ExactString: Int] = [:]
        var byUUID: [ExactString: Int] = [:]
        for (index, qube) in qubes.enumerated() {
            guard byName.updateValue(index, forKey: ExactString(qube.name)) == nil else {
                throw PolicyError(.invalidInput, "two qubes named '\(qube.name)'", expected: "unique qube names")
            }
            let uuid = qube.type == "AdminVM" || qube.name == "dom0" ? Self.adminVMUUID : qube.uuid
            if let uuid { byUUID[ExactString(uuid)] = index }
        }
        self.qubes = qubes
        self.byName = byName
        self.byUUID = byUUID
    }

    /// The qube named `name`.
    public subscript(name: String) -> QubeInfo? { index(named: name).map { qubes[$0] } }

    /// The position of the qube a literal names: a name, `uuid:<uuid>`, `dom0` or `@adminvm`.
    public func index(named literal: String) -> Int? {
        if let index = byName[ExactString(literal)] { return index }
        if let uuid = literal.dropPrefix("uuid:") { return byUUID[ExactString(String(uuid))] }
        if literal.isBytes("@adminvm") { return adminVM }
        return nil
    }

    /// dom0's position.
    public var adminVM: Int? { byUUID[ExactString(Self.adminVMUUID)] ?? byName[ExactString("dom0")] }
}

/// A source of system information: a qubes.xml store, GetSystemInfo JSON, or (later) the Admin API.
public protocol SystemInfoProvider {
    func systemInfo() throws -> SystemInfo
}

extension SystemInfo {
    /// The system a store describes, as qubesd would report it offline:
    /// dom0 `Running`, every other qube `Halted`.
    public init(store: Store) throws(PolicyError) {
        try self.init(qubes: store.domains.map { domain in
            let feature = domain.features[ExactString("internal")]
            return QubeInfo(
                name: domain.name, type: domain.vmClass.rawValue, tags: domain.tags.map(\.value),
                templateForDispVMs: domain.properties["template_for_dispvms"] == "True",
                defaultDispVM: store.effectiveReference("default_dispvm", of: domain),
                powerState: domain.vmClass == .adminVM ? "Running" : "Halted", uuid: domain.uuid,
                isInternal: feature.map { !$0.isEmpty } ?? false,
                relayVM: domain.properties["relayvm"].flatMap { $0.isEmpty ? nil : $0 },
                transportRPC: domain.properties["transport_rpc"].flatMap { $0.isEmpty ? nil : $0 })
        })
    }

    /// The system of a GetSystemInfo reply, `{"domains": {NAME: {…}}}`. Missing
    /// keys take the defaults: type `AppVM`, no tags, not a disposable
    /// template, no default_dispvm, `Halted`, dom0's uuid all zeroes, no
    /// relayvm or transport_rpc (an empty string counts as none, as in qrexec).
    public init(json bytes: [UInt8], file: String? = nil) throws(PolicyError) {
        let root = try JSONReader.policyInput(bytes, file: file)
        func invalid(_ message: String, _ expected: String) -> PolicyError {
            PolicyError(.invalidInput, message, file: file, expected: expected)
        }
        guard case .members(let domains)? = root.member("domains") else {
            throw invalid("no \"domains\" object", "{\"domains\": {NAME: {...}}}")
        }
        var qubes: [QubeInfo] = []
        for entry in domains {
            guard case .members = entry.value else { throw invalid("qube '\(entry.key)' is not an object", "an object") }
            var qube = QubeInfo(name: entry.key)
            func string(_ key: String) throws(PolicyError) -> String? {
                switch entry.value.member(key) {
                case nil, .null?: return nil
                case .string(let text)?: return text
                default: throw invalid("qube '\(entry.key)': '\(key)' is not a string", "a string or null")
                }
            }
            func flag(_ key: String) throws(PolicyError) -> Bool {
                switch entry.value.member(key) {
                case nil, .null?, .bool(false)?: return false
                case .bool(true)?: return true
                case .string(let text)?: return !text.isEmpty
                default: throw invalid("qube '\(entry.key)': '\(key)' is not a boolean", "true, false, a string or null")
                }
            }
            qube.type = try string("type") ?? qube.type
            qube.powerState = try string("power_state") ?? qube.powerState
            qube.defaultDispVM = try string("default_dispvm")
            qube.uuid = try string("uuid")
            qube.templateForDispVMs = try flag("template_for_dispvms")
            qube.isInternal = try flag("internal")
            qube.relayVM = try string("relayvm").flatMap { $0.isEmpty ? nil : $0 }
            qube.transportRPC = try string("transport_rpc").flatMap { $0.isEmpty ? nil : $0 }
            switch entry.value.member("tags") {
            case nil, .null?: break
            case .array(let items)?:
                qube.tags = try items.map { item throws(PolicyError) in
                    guard case .string(let tag) = item else { throw invalid("qube '\(entry.key)': a tag is not a string", "strings") }
                    return tag
                }
            default: throw invalid("qube '\(entry.key)': 'tags' is not a list", "a list of strings")
            }
            qubes.append(qube)
        }
        try self.init(qubes: qubes)
    }
}
