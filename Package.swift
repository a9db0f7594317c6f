// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Strata",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "strata", targets: ["strata"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // C libraries, fenced into shim targets: nothing above the Swift wrapper of each sees C types.
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSolv", pkgConfig: "libsolvext", providers: [.apt(["libsolv-dev", "libsolvext-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        .target(name: "StrataStore", dependencies: ["CLinux", "COpenSSL", "CArchive"]),
        .target(name: "StrataHTTP", dependencies: ["CLinux", "CCurl"]),
        .target(name: "StrataLayers", dependencies: [
            "StrataStore", "StrataHTTP",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "StrataResolver", dependencies: ["StrataLayers", "StrataStore", "CSolv"]),
        .target(name: "StrataLifecycle", dependencies: ["CLinux", "StrataStore", "StrataLayers"]),
        .target(name: "VLFS", dependencies: ["CLinux", "StrataStore", "StrataLayers", "StrataLifecycle"]),
        .target(name: "VLFSFuse", dependencies: ["CFuse3", "CLinux", "VLFS", "StrataStore", "StrataLayers"]),
        .target(name: "StrataBoot", dependencies: ["StrataHTTP", "StrataLayers", "StrataStore", "VLFS"]),
        .target(name: "Mirage", dependencies: [
            "StrataStore", "StrataLayers",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "Forensics", dependencies: ["VLFS", "Mirage", "StrataStore", "StrataLayers"]),
        .executableTarget(name: "strata", dependencies: [
            "StrataStore", "StrataLayers", "StrataResolver", "StrataHTTP", "VLFS", "VLFSFuse", "Forensics", "Mirage", "StrataLifecycle", "StrataBoot",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "strata-bench", dependencies: ["StrataStore", "Mirage"]),

        // Helpers shared by the test targets: scratch directories, shell commands, tree comparison.
        .target(name: "StrataTestSupport", dependencies: ["StrataStore"]),
        .testTarget(name: "StrataStoreTests", dependencies: ["StrataStore", "StrataTestSupport"]),
        .testTarget(name: "StrataHTTPTests", dependencies: ["StrataHTTP", "StrataTestSupport"]),
        .testTarget(name: "StrataLayersTests", dependencies: ["StrataLayers", "StrataTestSupport"]),
        .testTarget(name: "StrataResolverTests", dependencies: ["StrataResolver", "StrataLayers", "StrataStore", "StrataTestSupport"]),
        .testTarget(name: "VLFSTests", dependencies: ["VLFS", "StrataStore", "StrataLayers", "StrataTestSupport"]),
        .testTarget(name: "MirageTests", dependencies: ["Mirage", "StrataStore", "StrataLayers", "StrataTestSupport"]),
        // Resources: C sources the tests compile and run themselves (power-cut-disk.c), not part of the target.
        .testTarget(name: "StrataCLITests", dependencies: ["StrataStore", "StrataLayers", "StrataHTTP", "StrataTestSupport"], exclude: ["Resources"]),
    ]
)
