// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "AsyncSpawn",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AsyncSpawn", targets: ["AsyncSpawn"]),
        .executable(name: "spawn", targets: ["spawn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // libseccomp, found with pkg-config (Debian: libseccomp-dev).
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        // The spawn engine: parent-side preparation and the async-signal-safe child.
        .target(
            name: "CSpawn",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .target(
            name: "AsyncSpawn",
            dependencies: ["CSpawn", "CSeccomp"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "spawn",
            dependencies: [
                "AsyncSpawn",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Many spawns of every kind with leak checks (see README, Guarantees).
        .executableTarget(
            name: "soak",
            dependencies: ["AsyncSpawn"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // A helper the tests run as the child: prints what it sees.
        .executableTarget(
            name: "spawn-probe",
            path: "Tests/Probe",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // What both test targets share (the AddressSanitizer check, /proc reads,
        // the probe built without instrumentation).
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "AsyncSpawnTests",
            dependencies: ["AsyncSpawn", "CSpawn", "CSeccomp", "spawn-probe", "TestSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "spawnTests",
            dependencies: ["spawn", "spawn-probe", "TestSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
