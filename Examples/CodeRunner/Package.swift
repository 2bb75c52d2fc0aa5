// swift-tools-version: 6.1
import Foundation
import PackageDescription

// The root package (AsyncSpawn) is a path dependency, and a path dependency's identity
// is the last component of its directory's name, which depends on where the repository
// was cloned ("main", "AsyncSpawn", a CI checkout directory...). Compute it.
let rootIdentity = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // Examples/CodeRunner
    .deletingLastPathComponent()  // Examples
    .deletingLastPathComponent()  // the root package
    .lastPathComponent.lowercased()

let package = Package(
    name: "CodeRunner",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "code-runner", targets: ["code-runner"])
    ],
    dependencies: [
        .package(path: "../.."),
        // No traits: the server needs neither swift-configuration nor full Foundation
        // in Hummingbird, and leaving them out shortens the (long) first build.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.14.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(
            name: "CodeRunner",
            dependencies: [
                .product(name: "AsyncSpawn", package: rootIdentity),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "code-runner",
            dependencies: [
                "CodeRunner",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "CodeRunnerTests",
            dependencies: [
                "code-runner",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
