import Foundation
import QubesAdmin
import QubesStore

/// The qube topology: netvm chains, templates, disposable templates, PCI
/// devices and memory, as Graphviz DOT or as a self-contained SVG.
public struct Topology: Sendable {
    public struct Node: Sendable, Hashable {
        public var name: String
        public var vmClass: VMClass
        public var memory: String
        public var hvm: Bool

        /// A qube; `memory` is MiB as text ("" for none), `hvm` adds the stub domain's memory to its label.
        public init(name: String, vmClass: VMClass, memory: String, hvm: Bool = false) {
            (self.name, self.vmClass, self.memory, self.hvm) = (name, vmClass, memory, hvm)
        }
    }

    public enum EdgeKind: String, Sendable, Hashable {
        /// `from` uses `to` as netvm.
        case netvm
        /// `from` is based on the template `to`.
        case template
        /// `from` holds the PCI device `to`.
        case device
    }

    public struct Edge: Sendable, Hashable {
        public var from: String
        public var to: String
        public var kind: EdgeKind

        public init(from: String, to: String, kind: EdgeKind) { (self.from, self.to, self.kind) = (from, to, kind) }
    }

    public var nodes: [Node]
    public var devices: [String]
    public var edges: [Edge]

    /// A topology made of these qubes, devices (`pci:<port>`) and edges.
    public init(nodes: [Node], devices: [String], edges: [Edge]) {
        (self.nodes, self.devices, self.edges) = (nodes, devices, edges)
    }

    /// Reads the topology through a backend.
    public init(backend: Backend) throws {
        var nodes: [Node] = []
        var devices: [String] = []
        var edges: [Edge] = []
        for qube in try backend.qubes() {
            func value(_ property: String) -> String { (try? backend.property(property, of: qube.name).value) ?? "" }
            let isAdmin = qube.vmClass == .adminVM
            nodes.append(Node(name: qube.name, vmClass: qube.vmClass, memory: isAdmin ? "" : value("memory"), hvm: !isAdmin && value("virt_mode") == "hvm"))
            guard qube.vmClass.hasNetVM else { continue }
            let netvm = value("netvm")
            if !netvm.isEmpty { edges.append(Edge(from: qube.name, to: netvm, kind: .netvm)) }
            if qube.vmClass.hasTemplate {
                edges.append(Edge(from: qube.name, to: value("template"), kind: .template))
            }
            for device in try backend.assignedDevices(of: qube.name, deviceClass: "pci") {
                let id = "pci:" + device.port
                if !devices.contains(id) { devices.append(id) }
                edges.append(Edge(from: qube.name, to: id, kind: .device))
            }
        }
        self.nodes = nodes
        self.devices = devices
        self.edges = edges
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    private func label(_ node: Node) -> [String] {
        [node.name, node.vmClass.rawValue + (node.memory.isEmpty ? "" : " \(node.memory) MiB") + (node.hvm ? " +144 stub" : "")]
    }

    /// Graphviz DOT: netvm edges solid, template edges dashed, devices as boxes.
    public var dot: String {
        var lines = ["digraph qubes {", "  rankdir=LR;", "  node [shape=ellipse, fontname=\"sans-serif\"];"]
        for node in nodes {
            let shape = node.vmClass == .templateVM ? ", shape=component" : node.vmClass == .dispVM ? ", style=dashed" : ""
            let text = label(node).map { Self.quoted($0).dropFirst().dropLast() }.joined(separator: "\\n")
            lines.append("  \(Self.quoted(node.name)) [label=\"\(text)\"\(shape)];")
        }
        for device in devices { lines.append("  \(Self.quoted(device)) [shape=box];") }
        for edge in edges {
            let style = edge.kind == .template ? " [style=dashed, label=\"template\"]" : edge.kind == .device ? " [style=dotted]" : " [label=\"netvm\"]"
            lines.append("  \(Self.quoted(edge.from)) -> \(Self.quoted(edge.to))\(style);")
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    private static func escapeXML(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A self-contained SVG (no Graphviz needed): qubes in columns by depth
    /// along their netvm and template edges, devices in the first column.
    public var svg: String {
        var depth: [String: Int] = [:]
        func level(_ name: String, _ seen: Set<String>) -> Int {
            if let known = depth[name] { return known }
            let parents = edges.filter { $0.from == name && $0.kind != .device }.map(\.to).filter { !seen.contains($0) }
            let value = parents.isEmpty ? 1 : (parents.map { level($0, seen.union([name])) }.max() ?? 0) + 1
            depth[name] = value
            return value
        }
        for node in nodes { _ = level(node.name, []) }
        for device in devices { depth[device] = 0 }
        var columns: [Int: [String]] = [:]
        for name in devices + nodes.map(\.name) { columns[depth[name] ?? 1, default: []].append(name) }
        let width = 190, height = 56
        var position: [String: (x: Int, y: Int)] = [:]
        for (column, names) in columns {
            for (row, name) in names.enumerated() { position[name] = (20 + column * (width + 40), 20 + row * (height + 14)) }
        }
        let totalWidth = ((columns.keys.max() ?? 0) + 1) * (width + 40) + 40
        let totalHeight = (columns.values.map(\.count).max() ?? 1) * (height + 14) + 40
        var parts = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(totalWidth)\" height=\"\(totalHeight)\" font-family=\"sans-serif\" font-size=\"11\">"
        ]
        for edge in edges {
            guard let from = position[edge.from], let to = position[edge.to] else { continue }
            let dash = edge.kind == .template ? " stroke-dasharray=\"5,3\"" : edge.kind == .device ? " stroke-dasharray=\"2,2\"" : ""
            parts.append("<line x1=\"\(from.x)\" y1=\"\(from.y + height / 2)\" x2=\"\(to.x + width)\" y2=\"\(to.y + height / 2)\" stroke=\"#555\"\(dash)/>")
        }
        let byName = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, point) in position.sorted(by: { $0.key < $1.key }) {
            let node = byName[name]
            let fill = node == nil ? "#eee" : node!.vmClass == .templateVM ? "#dde" : "#fff"
            parts.append("<rect x=\"\(point.x)\" y=\"\(point.y)\" width=\"\(width)\" height=\"\(height)\" rx=\"6\" fill=\"\(fill)\" stroke=\"#333\"/>")
            let lines = node.map(label) ?? [name]
            for (index, line) in lines.enumerated() {
                parts.append("<text x=\"\(point.x + 8)\" y=\"\(point.y + 20 + index * 16)\">\(Self.escapeXML(line))</text>")
            }
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }
}
