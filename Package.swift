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
        // StrataServer's HTTP server, and the parts of SwiftNIO and swift-log it names.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries, fenced into shim targets: nothing above the Swift wrapper of each sees C types.
        .systemLibrary(name: "CLinux"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CSolv", pkgConfig: "libsolvext", providers: [.apt(["libsolv-dev", "libsolvext-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        .target(name: "StrataStore", dependencies: ["CLinux", "COpenSSL", "CArchive"]),
        .target(name: "StrataHTTP", dependencies: ["CCurl"]),
        // The only module that sees Hummingbird and SwiftNIO: serving directories, files and routes over HTTP.
        .target(name: "StrataServer", dependencies: [
            "StrataStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .target(name: "StrataLayers", dependencies: [
            "StrataStore", "StrataHTTP",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "StrataResolver", dependencies: ["StrataLayers", "StrataStore", "CSolv"]),
        .target(name: "StrataLifecycle", dependencies: ["CLinux", "StrataStore", "StrataLayers"]),
        .target(name: "VLFS", dependencies: ["CLinux", "StrataStore", "StrataLayers", "StrataLifecycle"]),
        .target(name: "VLFSFuse", dependencies: ["CFuse3", "CURing", "CLinux", "VLFS", "StrataStore", "StrataLayers"]),
        .target(name: "StrataBoot", dependencies: ["StrataHTTP", "StrataLayers", "StrataStore", "VLFS"]),
        .target(name: "Mirage", dependencies: [
            "StrataStore", "StrataLayers",
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .target(name: "Forensics", dependencies: ["VLFS", "Mirage", "StrataStore", "StrataLayers"]),
        .target(name: "StrataConvert", dependencies: ["StrataStore", "StrataLayers", "StrataResolver", "StrataLifecycle", "VLFS", "Forensics", "Mirage"]),
        .executableTarget(name: "strata", dependencies: [
            "StrataStore", "StrataLayers", "StrataResolver", "StrataHTTP", "StrataServer", "VLFS", "VLFSFuse", "Forensics", "Mirage", "StrataLifecycle",
            "StrataConvert", "StrataBoot",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .executableTarget(name: "strata-bench", dependencies: ["StrataStore", "Mirage"]),

        // Helpers shared by the test targets: scratch directories, shell commands, tree comparison.
        .target(name: "StrataTestSupport", dependencies: ["StrataStore"]),
        .testTarget(name: "StrataStoreTests", dependencies: ["StrataStore", "StrataTestSupport"]),
        .testTarget(name: "StrataHTTPTests", dependencies: ["StrataHTTP", "StrataTestSupport"]),
        .testTarget(name: "StrataLayersTests", dependencies: ["StrataLayers", "StrataTestSupport"]),
        .testTarget(name: "StrataResolverTests", dependencies: ["StrataResolver", "StrataLayers", "StrataStore", "StrataTestSupport"]),
        .testTarget(name: "VLFSTests", dependencies: ["VLFS", "StrataStore", "StrataLayers", "StrataTestSupport"]),
        .testTarget(name: "StrataConvertTests", dependencies: ["StrataConvert", "StrataLayers"]),
        .testTarget(name: "MirageTests", dependencies: ["Mirage", "StrataStore", "StrataLayers", "StrataTestSupport"]),
        // Resources: C sources the tests compile and run themselves (power-cut-disk.c), not part of the target.
        .testTarget(name: "StrataCLITests", dependencies: ["StrataStore", "StrataLayers", "StrataHTTP", "StrataServer", "StrataTestSupport",
                                                          .product(name: "Logging", package: "swift-log")], exclude: ["Resources"]),
    ]
)
