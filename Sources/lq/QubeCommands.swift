import ArgumentParser
import InQubeTool
import LQCommon
import QubesAdmin
import QubesStore

/// Where qube commands read and change state: qubesd's socket, or a qubes.xml offline.
/// Where the qubes are: qubesd's socket or a qubes.xml; every command that reads them takes these two options.
struct SystemSource: ParsableArguments {
    @Option(help: "qubesd's Admin API socket.") var socket: String?
    @Option(help: "Work offline on this qubes.xml instead of the socket.") var store: String?
}

struct BackendOptions: ParsableArguments {
    @OptionGroup var source: SystemSource
    @Flag(help: "Print data as JSON.") var json = false

    func validate() throws {
        if source.socket != nil && source.store != nil { throw ValidationError("give either --socket or --store, not both") }
    }

    /// Whether it works offline on a qubes.xml.
    var isOffline: Bool { source.store != nil }

    func backend() -> Backend {
        if let store = source.store { return OfflineBackend(path: store) }
        return AdminAPIBackend(transport: AdminTransport(socketPath: source.socket ?? AdminTransport.defaultSocket))
    }

    /// Runs `body`, printing an error (after the store and qube it concerns) and exiting 1 on failure.
    func run(qube: String?, _ body: (Backend) throws -> Void) throws {
        try Tool.failing([source.store, qube].compactMap { $0 }.map { $0 + ": " }.joined()) { try body(backend()) }
    }
}

/// `lq ls`: the qubes, as `qvm-ls`.
struct ListQubes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List qubes with state, class, label, template and netvm.")

    @OptionGroup var options: BackendOptions

    func run() throws {
        try options.run(qube: nil) { backend in
            let rows = try backend.qubes().map { qube -> [String: String] in
                func value(_ property: String) -> String {
                    guard qube.vmClass != .adminVM || property == "label" else { return "" }
                    return (try? backend.property(property, of: qube.name).value) ?? ""
                }
                let template = qube.vmClass.hasTemplate ? value("template") : ""
                let netvm = qube.vmClass.hasNetVM ? value("netvm") : ""
                return ["name": qube.name, "state": qube.state.rawValue, "class": qube.vmClass.rawValue, "label": value("label"),
                        "template": template, "netvm": netvm]
            }
            let columns = ["name", "state", "class", "label", "template", "netvm"]
            if options.json {
                Terminal.write(JSONValue.array(rows.map { row in
                    .object(row.mapValues { $0.isEmpty ? .null : .string($0) })
                }).canonicalBytes())
            } else {
                Terminal.write(Table.render(header: columns.map { $0.uppercased() }, rows: rows.map { row in
                    columns.map { row[$0].flatMap { $0.isEmpty ? nil : $0 } ?? "-" }
                }))
            }
        }
    }
}

/// `lq prefs`: read and change properties, as `qvm-prefs`.
struct Prefs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefs", abstract: "List, get, set or reset properties of a qube (or, with --global, of the system).",
        discussion: "With PROP, prints the bare value; with VALUE, sets it ('' means none for qube references).")

    @OptionGroup var options: BackendOptions
    @Flag(name: .customLong("global"), help: "Global properties (then give no QUBE).") var isGlobal = false
    @Flag(name: [.customShort("D"), .customLong("default")], help: "Reset PROP to its default.") var reset = false
    @Argument(help: "QUBE [PROP [VALUE]], or PROP [VALUE] with --global.") var words: [String] = []

    func validate() throws {
        let limit = isGlobal ? 2 : 3
        if !isGlobal && words.isEmpty { throw ValidationError("give a qube name (or --global)") }
        if words.count > limit { throw ValidationError("too many arguments") }
        if reset && words.count != limit - 1 { throw ValidationError("--default needs exactly one property") }
    }

    func run() throws {
        let qube = isGlobal ? nil : words[0]
        let rest = Array(words.dropFirst(isGlobal ? 0 : 1))
        try options.run(qube: qube) { backend in
            switch (rest.count, reset) {
            case (1, true): try backend.resetProperty(rest[0], of: qube)
            case (2, _): try backend.setProperty(rest[0], of: qube, to: rest[1])
            case (1, false):
                let value = try backend.property(rest[0], of: qube)
                if options.json {
                    Terminal.write(value.json.canonicalBytes())
                } else {
                    Terminal.write(value.value + "\n")
                }
            default:
                var values: [(String, PropertyValue)] = []
                for name in try backend.propertyNames(of: qube) {
                    if let value = try? backend.property(name, of: qube) { values.append((name, value)) }
                }
                if options.json {
                    Terminal.write(JSONValue.object(Dictionary(uniqueKeysWithValues: values.map { ($0.0, $0.1.json) })).canonicalBytes())
                } else {
                    Terminal.write(Table.render(header: nil, rows: values.map { [$0.0, $0.1.isDefault ? "D" : "-", $0.1.value] }))
                }
            }
        }
    }
}

/// `lq features`: list, get, set or unset features, as `qvm-features`.
struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "features", abstract: "List, get, set or unset features of a qube.")

    @OptionGroup var options: BackendOptions
    @Flag(help: "Remove feature NAME.") var unset = false
    @Argument(help: "QUBE [NAME [VALUE]]") var words: [String]

    func validate() throws {
        if words.isEmpty || words.count > 3 { throw ValidationError("give QUBE [NAME [VALUE]]") }
        if unset && words.count != 2 { throw ValidationError("--unset needs QUBE NAME") }
    }

    func run() throws {
        let qube = words[0]
        try options.run(qube: qube) { backend in
            switch (words.count, unset) {
            case (2, true): try backend.removeFeature(words[1], of: qube)
            case (3, _): try backend.setFeature(words[1], to: words[2], of: qube)
            case (2, false):
                let value = try backend.feature(words[1], of: qube)
                Terminal.write(options.json ? JSONValue.string(value).canonicalBytes() : Array((value + "\n").utf8))
            default:
                let names = try backend.features(of: qube)
                let values = try names.map { ($0, try backend.feature($0, of: qube)) }
                if options.json {
                    Terminal.write(JSONValue.members(values.map { JSONValue.Member($0.0, .string($0.1)) }).canonicalBytes())
                } else {
                    Terminal.write(Table.render(header: nil, rows: values.map { [$0.0, $0.1] }))
                }
            }
        }
    }
}

/// `lq tags`: list, add or remove tags, as `qvm-tags`.
struct Tags: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tags", abstract: "List, add or remove tags of a qube.")

    enum Action: String, ExpressibleByArgument, CaseIterable {
        case list, add, del
    }

    @OptionGroup var options: BackendOptions
    @Argument(help: "The qube.") var qube: String
    @Argument(help: "list, add or del.") var action: Action = .list
    @Argument(help: "Tags to add or remove.") var tags: [String] = []

    func validate() throws {
        if action != .list && tags.isEmpty { throw ValidationError("\(action.rawValue) needs at least one tag") }
    }

    func run() throws {
        try options.run(qube: qube) { backend in
            switch action {
            case .add: for tag in tags { try backend.addTag(tag, to: qube) }
            case .del: for tag in tags { try backend.removeTag(tag, from: qube) }
            case .list:
                let list = try backend.tags(of: qube)
                Terminal.write(options.json ? JSONValue.array(list.map(JSONValue.string)).canonicalBytes() : Array(list.map { $0 + "\n" }.joined().utf8))
            }
        }
    }
}

extension PropertyValue {
    var json: JSONValue {
        .object(["type": .string(type), "default": .bool(isDefault), "value": type == "vm" && value.isEmpty ? .null : .string(value)])
    }
}

/// Plain-text columns padded to the widest cell.
enum Table {
    static func render(header: [String]?, rows: [[String]]) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let width = all.first?.count else { return "" }
        let widths = (0..<width).map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == width - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
