// swift-tools-version: 6.2
//
// AsyncSpawn's side-by-side benchmarks: a package of its own, so that the
// library's build stays light. Run from the repository root:
//
//     swift run -c release --package-path Benchmarks compare [--quick] [--scenario N]
//
import Foundation
import PackageDescription

// A path dependency's identity is the last component of its directory, which is
// whatever the clone of the repository was called: compute it.
let rootIdentity = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()
    .deletingLastPathComponent()
    .lastPathComponent
    .lowercased()

let package = Package(
    name: "AsyncSpawnBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
        // Already in the graph through swift-subprocess; named for FilePath.
        .package(url: "https://github.com/apple/swift-system", from: "1.5.0"),
    ],
    targets: [
        // The floor: posix_spawn + waitpid, plain read/write loops, and the
        // measuring helpers (thread sampler, VmHWM, heap toucher).
        .target(
            name: "CFloor",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .executableTarget(
            name: "compare",
            dependencies: [
                "CFloor",
                .product(name: "AsyncSpawn", package: rootIdentity),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
