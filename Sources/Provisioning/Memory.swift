import LQCommon
import QubesAdmin
import QubesStore

/// The memory budget (docs/liteqube.md, "Memory budget"): configured memory, plus a 144 MiB stub
/// domain for every HVM qube, grouped by when the qubes run.
public struct MemoryBudget: Sendable {
    public struct Entry: Sendable, Hashable {
        public var qube: String
        public var memory: Int
        public var maxmem: Int?
        public var stubdomain: Int
        public var presence: Presence
        public var total: Int { memory + stubdomain }
    }

    public static let stubdomainMiB = 144

    public var entries: [Entry]

    /// Sum per presence group.
    public var totals: [Presence: Int] {
        var totals: [Presence: Int] = [:]
        for entry in entries { totals[entry.presence, default: 0] += entry.total }
        return totals
    }

    /// The default Qubes 4.3 service qubes this replaces: sys-net 300, sys-usb 300,
    /// sys-firewall 500, sys-whonix 500, plus stub domains for the HVM ones.
    public static var qubesDefaultTotal: Int {
        Catalog.qubesDefaults.reduce(0) { $0 + $1.memory + ($1.hvm ? stubdomainMiB : 0) }
    }

    /// fw-net, core-net, core-tor and core-usb with their stub domains: the set
    /// Liteqube's README measured.
    public func serviceTotal(_ manifest: Manifest) -> Int {
        let names = Set(manifest.catalog.roles.filter(\.inServiceTotal).map { manifest.name($0.role) })
        return entries.filter { names.contains($0.qube) }.reduce(0) { $0 + $1.total }
    }

    /// The budget of a desired state.
    public init(desired: DesiredState) {
        entries = desired.qubes.map {
            Entry(qube: $0.name, memory: $0.memory, maxmem: 0, stubdomain: $0.isHVM ? Self.stubdomainMiB : 0, presence: $0.presence)
        }
    }

    /// The budget of the service qubes a system has now: Liteqube's (by the
    /// manifest's names) and the Qubes defaults it replaces — always on when
    /// they start at boot, on demand when not, left out when they may not
    /// start at all (`prohibit-start`).
    public init(backend: Backend, manifest: Manifest) throws {
        let presence = Dictionary(manifest.catalog.roles.map { (manifest.name($0.role), $0.presence) }, uniquingKeysWith: { first, _ in first })
        var entries: [Entry] = []
        for qube in try backend.qubes() {
            let group: Presence
            if let liteqube = presence[qube.name] {
                group = liteqube
            } else if Catalog.qubesDefaults.contains(where: { $0.name == qube.name }) {
                if let reason = try? backend.feature("prohibit-start", of: qube.name), !reason.isEmpty { continue }
                group = (try? backend.property("autostart", of: qube.name))?.value == "True" ? .alwaysOn : .onDemand
            } else {
                continue
            }
            let memory = Int((try? backend.property("memory", of: qube.name))?.value ?? "") ?? 0
            let maxmem = (try? backend.property("maxmem", of: qube.name)).flatMap { Int($0.value) }
            let hvm = (try? backend.property("virt_mode", of: qube.name))?.value == "hvm"
            entries.append(Entry(qube: qube.name, memory: memory, maxmem: maxmem, stubdomain: hvm ? Self.stubdomainMiB : 0, presence: group))
        }
        self.entries = entries
    }

    public var json: JSONValue {
        .object([
            "qubes": .array(entries.map { entry in
                .object([
                    "qube": .string(entry.qube), "memory": .integer(String(entry.memory)),
                    "maxmem": entry.maxmem.map { .integer(String($0)) } ?? .null, "stubdomain": .integer(String(entry.stubdomain)),
                    "presence": .string(entry.presence.rawValue),
                ])
            }),
            "totals": .object(Dictionary(uniqueKeysWithValues: Presence.allCases.map { ($0.rawValue, JSONValue.integer(String(totals[$0] ?? 0))) })),
        ])
    }
}
