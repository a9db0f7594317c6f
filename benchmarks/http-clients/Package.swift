// swift-tools-version:6.0
// A measurement harness, not part of Strata's package (CI does not build it): mirrors the objects of a
// served repository with AsyncHTTPClient or with libcurl easy handles, the way Strata's fetcher does.
import PackageDescription

let package = Package(
    name: "http-clients",
    dependencies: [
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Strata's own libcurl shim (Sources/CCurl, linked here): the same typed setopt wrappers.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .executableTarget(name: "http-mirror", dependencies: [
            "CCurl",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
