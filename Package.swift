// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "lq",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "lq", targets: ["lq"]),
        .executable(name: "lq-splitfile", targets: ["lq-splitfile"]),
        .executable(name: "lq-splitpassword", targets: ["lq-splitpassword"]),
        .library(name: "QubesStore", targets: ["QubesStore"]),
        .library(name: "BootProtect", targets: ["BootProtect"]),
        .library(name: "SplitServices", targets: ["SplitServices"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .target(
            name: "QubesStore",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")]
        ),
        .target(
            name: "BootProtect",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "SplitServices",
            dependencies: ["BootProtect"]
        ),
        .executableTarget(
            name: "lq",
            dependencies: [
                "QubesStore",
                "BootProtect",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "SplitTool",
            dependencies: ["SplitServices", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lq-splitfile",
            dependencies: ["SplitTool", "SplitServices", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lq-splitpassword",
            dependencies: ["SplitTool", "SplitServices", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lq-bench",
            dependencies: ["QubesStore"],
            path: "Benchmarks/lq-bench"
        ),
        .testTarget(
            name: "QubesStoreTests",
            dependencies: ["QubesStore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "lqTests",
            dependencies: ["lq", "lq-splitfile", "lq-splitpassword"]
        ),
        .testTarget(
            name: "BootProtectTests",
            dependencies: ["BootProtect"]
        ),
        .testTarget(
            name: "SplitServicesTests",
            dependencies: ["SplitServices", "BootProtect"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
