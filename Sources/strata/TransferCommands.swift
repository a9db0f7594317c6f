import ArgumentParser
import Foundation
import Mirage
import StrataLayers
import StrataStore

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy an image to another Strata home, or a layer to another repository.",
        discussion: """
            Copies only the objects the destination lacks, verifying each by its digest, then records the \
            image in the destination's catalog (a new version of the same name, unless it is already the \
            default there) or the layer in the destination's index. With --layer, SOURCE and DESTINATION \
            are repositories (names or paths).
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The image to push (with --layer: the source repository).") var source: String
    @Argument(help: "The destination Strata home (with --layer: repository).") var destination: String
    @Option(help: "Push this layer, NAME[=VERSION], instead of an image.") var layer: String?

    func run() throws {
        if let layer { return try transferLayer(layer, from: try options.repository(source), to: try options.repository(destination)) }
        let local = try options.catalog()
        let version = try local.resolve(try ImageReference(parsing: source), for: .checkout, by: .current)
        try transferImage(version, from: local, to: try Catalog(home: StrataHome(explicit: destination)))
    }
}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy an image from another Strata home into this one, or a layer from another repository.",
        discussion: "The reverse of push: only missing objects are copied, each verified. With --layer, SOURCE and DESTINATION are repositories.")
    @OptionGroup var options: HomeOptions
    @Argument(help: "The Strata home to pull from (with --layer: the source repository).") var source: String
    @Argument(help: "The image to pull, as that home names it (with --layer: the destination repository).") var target: String
    @Option(help: "Pull this layer, NAME[=VERSION], instead of an image.") var layer: String?

    func run() throws {
        if let layer { return try transferLayer(layer, from: try options.repository(source), to: try options.repository(target)) }
        let remote = try Catalog(home: StrataHome(explicit: source))
        let version = try remote.resolve(try ImageReference(parsing: target), for: .checkout, by: .current)
        try transferImage(version, from: remote, to: try options.catalog())
    }
}

/// Copies an image's objects and records it in the destination catalog, printing its digest first.
func transferImage(_ version: ImageVersion, from source: Catalog, to destination: Catalog) throws {
    guard version.state == .active else { throw CatalogError("image \(version.reference) is deleted; its objects may be gone") }
    let manifest = try source.manifest(of: version)
    let (report, recorded) = try HomeLock.withShared(destination.home) {
        let report = try ObjectTransfer.copy([version.digest], from: source.store, to: destination.store)
        if let current = try? destination.resolve(.defaultVersion(version.name)), current.digest == version.digest { return (report, current) }
        return (report, try destination.checkin(manifest: manifest, name: version.name, parent: version.parent))
    }
    print(recorded.digest)
    print("\(recorded.reference) in \(destination.home.path): copied \(report.copied) objects (\(report.bytes) bytes), \(report.present) already there")
}

/// Copies a layer unit's objects and indexes it in the destination repository.
func transferLayer(_ unit: String, from source: Repository, to destination: Repository) throws {
    let parts = unit.split(separator: "=", maxSplits: 1).map(String.init)
    guard let record = try source.find(parts[0], version: parts.count > 1 ? parts[1] : nil) else {
        throw LayerError("\(unit): no such layer in \(source.path)")
    }
    // A served repository's mirror fetches (and verifies) what it lacks first; a local one has it all.
    try source.fetchLayers([record])
    let report = try ObjectTransfer.copy([record.digest], from: source.store, to: destination.store)
    let registered = try destination.registerStoredLayer(record.digest)
    print("\(registered.name) \(registered.version) \(registered.digest)")
    print("\(destination.path): copied \(report.copied) objects (\(report.bytes) bytes), \(report.present) already there")
}
