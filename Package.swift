// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "lq",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lq", targets: ["lq"]),
        .executable(name: "lq-protect", targets: ["lq-protect"]),
        .executable(name: "lq-inqube", targets: ["lq-inqube"]),
        .executable(name: "lq-splitfile", targets: ["lq-splitfile"]),
        .executable(name: "lq-splitpassword", targets: ["lq-splitpassword"]),
        .library(name: "QubesStore", targets: ["QubesStore"]),
        .library(name: "QubesAdmin", targets: ["QubesAdmin"]),
        .library(name: "QrexecPolicy", targets: ["QrexecPolicy"]),
        .library(name: "Provisioning", targets: ["Provisioning"]),
        .library(name: "BootProtect", targets: ["BootProtect"]),
        .library(name: "SplitServices", targets: ["SplitServices"]),
        .library(name: "Shards", targets: ["Shards"]),
        .library(name: "SystemLayer", targets: ["SystemLayer"]),
        .library(name: "LQCommon", targets: ["LQCommon"]),
        .library(name: "Topology", targets: ["Topology"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
    ],
    targets: [
        // Every OS call: typed errors, no symlink followed, one atomic replace (docs/system-layer.md).
        .target(name: "SystemLayer"),
        // What the guard, the split services and provisioning share: naming rules, checksum pins, notifications.
        .target(
            name: "LQCommon",
            dependencies: ["SystemLayer", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "QubesStore",
            dependencies: ["SystemLayer", "LQCommon", .product(name: "OrderedCollections", package: "swift-collections")]
        ),
        .target(
            name: "QubesAdmin",
            dependencies: ["QubesStore", "SystemLayer", "LQCommon"]
        ),
        .target(
            name: "QrexecPolicy",
            dependencies: ["QubesStore", "QubesAdmin", "SystemLayer", "LQCommon"]
        ),
        .target(
            name: "Provisioning",
            dependencies: [
                "QubesStore", "QubesAdmin", "QrexecPolicy", "SystemLayer", "LQCommon", .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["Resources"],
            plugins: ["EmbedTemplateTexts"]
        ),
        // The components' template texts (Sources/Provisioning/Resources) compiled into the code.
        .executableTarget(name: "EmbedTexts", path: "Plugins/EmbedTexts"),
        .plugin(name: "EmbedTemplateTexts", capability: .buildTool(), dependencies: ["EmbedTexts"]),
        // The qube topology as DOT or SVG, for lq graph.
        .target(name: "Topology", dependencies: ["QubesAdmin"]),
        .target(
            name: "Shards",
            dependencies: ["QubesStore", "QubesAdmin", "QrexecPolicy", "SystemLayer", "LQCommon", .product(name: "OrderedCollections", package: "swift-collections")],
            // The boot unit's text (Resources/lq-shards.service), compiled into the code.
            exclude: ["Resources"],
            plugins: ["EmbedTemplateTexts"]
        ),
        .target(
            name: "BootProtect",
            dependencies: ["SystemLayer", "LQCommon"]
        ),
        .target(
            name: "SplitServices",
            dependencies: ["SystemLayer", "LQCommon"]
        ),
        .executableTarget(
            name: "lq",
            dependencies: [
                "QubesStore",
                "QubesAdmin",
                "Provisioning",
                "QrexecPolicy",
                "Shards",
                "Topology",
                "InQubeTool",
                "SystemLayer",
                "LQCommon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The commit of a release build, defined by scripts/release (docs/packaging.md, "Version").
        .target(name: "CBuildInfo"),
        .target(
            name: "InQubeTool",
            dependencies: ["CBuildInfo", "SplitServices", "BootProtect", "SystemLayer", "LQCommon", "QubesStore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "lq-protect", dependencies: ["InQubeTool"]),
        .executableTarget(name: "lq-inqube", dependencies: ["InQubeTool"]),
        .executableTarget(
            name: "lq-splitfile",
            dependencies: ["InQubeTool"]
        ),
        .executableTarget(
            name: "lq-splitpassword",
            dependencies: ["InQubeTool"]
        ),
        .target(
            name: "AdminServer",
            dependencies: ["QubesAdmin"]
        ),
        .executableTarget(
            name: "lq-bench",
            dependencies: ["QubesStore", "QubesAdmin", "AdminServer", "QrexecPolicy", "Shards", "LQCommon"],
            path: "Benchmarks/lq-bench"
        ),
        // Fixture locating, the qubes.xml fixtures, running the built programs and a file system to wrap, for every test target.
        .target(name: "TestSupport", dependencies: ["SystemLayer"], path: "Tests/TestSupport", resources: [.copy("Fixtures")]),
        .testTarget(name: "SystemLayerTests", dependencies: ["SystemLayer"]),
        .testTarget(name: "TopologyTests", dependencies: ["Topology", "QubesStore"]),
        .testTarget(
            name: "QubesStoreTests",
            dependencies: ["QubesStore", "SystemLayer", "LQCommon", "TestSupport"]
        ),
        .testTarget(
            name: "QubesAdminTests",
            dependencies: ["QubesAdmin", "AdminServer", "TestSupport"]
        ),
        .testTarget(
            name: "ProvisioningTests",
            dependencies: ["Provisioning", "AdminServer", "QrexecPolicy", "BootProtect", "SplitServices", "SystemLayer", "LQCommon"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "QrexecPolicyTests",
            dependencies: ["QrexecPolicy", "QubesStore", "QubesAdmin", "AdminServer", "LQCommon"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ShardsTests",
            dependencies: ["Shards", "QubesStore", "QubesAdmin", "AdminServer", "QrexecPolicy", "SystemLayer", "LQCommon", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "BootProtectTests",
            dependencies: ["BootProtect", "SystemLayer", "LQCommon"]
        ),
        .testTarget(
            name: "SplitServicesTests",
            dependencies: ["SplitServices", "BootProtect", "SystemLayer", "LQCommon"]
        ),
        .testTarget(
            name: "lqTests",
            dependencies: ["lq", "lq-protect", "lq-inqube", "lq-splitfile", "lq-splitpassword", "TestSupport", "AdminServer"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
