// swift-tools-version:6.1
// The fuzz harnesses of lq (docs/fuzzing.md): one libFuzzer executable, its target chosen by
// LQ_FUZZ_TARGET. A package of its own so the main package's build never sees the sanitizer flags.
// scripts/fuzz builds it in release with ASan and libFuzzer's coverage on every Swift module
// (-Xswiftc, which reaches the dependencies and the build tools too); only this executable links
// libFuzzer, so the build tools keep their own main, and its @main starts libFuzzer's driver.
import PackageDescription

let package = Package(
    name: "lq-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "lq", path: "..")],
    targets: [
        .executableTarget(
            name: "lq-fuzz",
            dependencies: [
                .product(name: "QubesStore", package: "lq"),
                .product(name: "QubesAdmin", package: "lq"),
                .product(name: "QrexecPolicy", package: "lq"),
                .product(name: "Shards", package: "lq"),
                .product(name: "Provisioning", package: "lq"),
                .product(name: "BootProtect", package: "lq"),
                .product(name: "SplitServices", package: "lq"),
                .product(name: "LQCommon", package: "lq"),
                .product(name: "SystemLayer", package: "lq"),
            ],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]
        )
    ]
)
