// swift-tools-version: 6.1
//
// AsyncSpawn next to swift-subprocess in one process (project issue 5): a package
// of its own, so that the root package does not depend on swift-subprocess.
// Run with Integration/SubprocessInterop/test.sh.
import Foundation
import PackageDescription

// The root package is a path dependency, whose identity is the last component of
// its directory ("main", "AsyncSpawn", a CI checkout directory...): compute it.
let rootIdentity = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // Integration/SubprocessInterop
    .deletingLastPathComponent()  // Integration
    .deletingLastPathComponent()  // the root package
    .lastPathComponent.lowercased()

let package = Package(
    name: "SubprocessInterop",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        // No traits: the tests need no Foundation extensions of Subprocess.
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2", traits: []),
    ],
    targets: [
        .testTarget(
            name: "SubprocessInteropTests",
            dependencies: [
                .product(name: "AsyncSpawn", package: rootIdentity),
                .product(name: "Subprocess", package: "swift-subprocess"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
