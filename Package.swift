// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "lq",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lq", targets: ["lq"]),
        .library(name: "QubesStore", targets: ["QubesStore"]),
        .library(name: "QubesAdmin", targets: ["QubesAdmin"]),
        .library(name: "QrexecPolicy", targets: ["QrexecPolicy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .target(
            name: "QubesStore",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")]
        ),
        .target(
            name: "QubesAdmin",
            dependencies: ["QubesStore"]
        ),
        .target(
            name: "QrexecPolicy",
            dependencies: ["QubesStore"]
        ),
        .executableTarget(
            name: "lq",
            dependencies: [
                "QubesStore",
                "QubesAdmin",
                "Provisioning",
                "QrexecPolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "Provisioning",
            dependencies: ["QubesStore", "QubesAdmin", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "AdminServer",
            dependencies: ["QubesAdmin"]
        ),
        .executableTarget(
            name: "lq-bench",
            dependencies: ["QubesStore", "QubesAdmin", "AdminServer", "QrexecPolicy"],
            path: "Benchmarks/lq-bench"
        ),
        .testTarget(
            name: "QubesStoreTests",
            dependencies: ["QubesStore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "QubesAdminTests",
            dependencies: ["QubesAdmin", "AdminServer"]
        ),
        .testTarget(
            name: "ProvisioningTests",
            dependencies: ["Provisioning", "AdminServer"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "QrexecPolicyTests",
            dependencies: ["QrexecPolicy", "QubesStore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "lqTests",
            dependencies: ["lq"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
