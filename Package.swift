// swift-tools-version:6.1
// Switchyard: an MCP transport gateway on libevent.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "switchyard",
    products: [
        .executable(name: "switchyard", targets: ["switchyard"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries: headers, link flags and shim wrappers for macros. No logic.
        .systemLibrary(
            name: "CLibEvent", path: "Sources/CLibEvent", pkgConfig: "libevent_core",
            providers: [.apt(["libevent-dev"])]),
        .systemLibrary(
            name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]),
        // Pure decisions: JSON-RPC envelope scanning, id splicing, framing, HTTP rules, sessions, config.
        .target(name: "SwitchyardCore", swiftSettings: strict),
        // The only module that imports C: loop, timers, signals, HTTP server, child processes.
        .target(
            name: "SwitchyardIO", dependencies: ["SwitchyardCore", "CLibEvent", "COpenSSL"],
            swiftSettings: strict),
        // Wiring: turns I/O events into core decisions and executes them.
        .target(
            name: "SwitchyardServer",
            dependencies: ["SwitchyardCore", "SwitchyardIO", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        .executableTarget(
            name: "switchyard",
            dependencies: [
                "SwitchyardServer", "SwitchyardCore", "SwitchyardIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // Fuzz targets: libFuzzer under `make fuzz`, regression replayers in `make test` (Tests/Fuzz).
        .target(name: "FuzzSupport", path: "Tests/Fuzz/FuzzSupport"),
        .executableTarget(name: "FuzzEnvelope", dependencies: ["FuzzSupport", "SwitchyardCore"], path: "Tests/Fuzz/FuzzEnvelope"),
        .executableTarget(name: "FuzzHTTPInputs", dependencies: ["FuzzSupport", "SwitchyardCore"], path: "Tests/Fuzz/FuzzHTTPInputs"),
        .executableTarget(name: "FuzzHTTP1", dependencies: ["FuzzSupport", "SwitchyardCore"], path: "Tests/Fuzz/FuzzHTTP1"),
        .executableTarget(
            name: "FuzzConfig", dependencies: ["FuzzSupport", "SwitchyardCore", "SwitchyardServer"], path: "Tests/Fuzz/FuzzConfig"),
        .testTarget(name: "SwitchyardCoreTests", dependencies: ["SwitchyardCore"], swiftSettings: strict),
        .testTarget(
            name: "SwitchyardServerTests", dependencies: ["SwitchyardServer", "SwitchyardCore"],
            swiftSettings: strict),
    ]
)
