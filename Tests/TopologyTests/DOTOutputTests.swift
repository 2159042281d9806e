import QubesStore
import Testing
import Topology

/// `lq graph`'s DOT text for a small hand-built system, byte for byte.
@Suite struct DOTOutputTests {
    @Test func aSmallSystemIsWrittenExactly() {
        let topology = Topology(
            nodes: [
                Topology.Node(name: "dom0", vmClass: .adminVM, memory: ""),
                Topology.Node(name: "debian-core", vmClass: .templateVM, memory: "400"),
                Topology.Node(name: "core-net", vmClass: .dispVM, memory: "300", hvm: true),
                Topology.Node(name: "work \"x\"", vmClass: .appVM, memory: "2000"),
            ],
            devices: ["pci:00_14.3"],
            edges: [
                Topology.Edge(from: "core-net", to: "debian-core", kind: .template),
                Topology.Edge(from: "core-net", to: "pci:00_14.3", kind: .device),
                Topology.Edge(from: "work \"x\"", to: "core-net", kind: .netvm),
            ])
        #expect(topology.dot == #"""
            digraph qubes {
              rankdir=LR;
              node [shape=ellipse, fontname="sans-serif"];
              "dom0" [label="dom0\nAdminVM"];
              "debian-core" [label="debian-core\nTemplateVM 400 MiB", shape=component];
              "core-net" [label="core-net\nDispVM 300 MiB +144 stub", style=dashed];
              "work \"x\"" [label="work \"x\"\nAppVM 2000 MiB"];
              "pci:00_14.3" [shape=box];
              "core-net" -> "debian-core" [style=dashed, label="template"];
              "core-net" -> "pci:00_14.3" [style=dotted];
              "work \"x\"" -> "core-net" [label="netvm"];
            }

            """#)
    }
}
