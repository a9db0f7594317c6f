import Foundation
import Mirage
import StrataLayers
import StrataStore
import VLFS

/// `strata export oci`: an LDF's composition, a catalog image or a VLFS as an OCI image layout — one
/// OCI layer per Strata layer, lowest first (software layers, configuration layers, the generated
/// dpkg database), then for a VLFS or a snapshot of one a last layer with what its private layer and
/// whiteouts change. A configuration layer's deletions become `.wh.NAME` members and its opaque
/// directories `.wh..wh..opq` members; every layer descriptor carries the layer's Strata name, version
/// and kind as annotations (`OCI.layerNameAnnotation`…). The output is reproducible: members in tree
/// order with their own times and numeric owners, gzip without a time stamp, JSON with sorted keys.
public struct OCIExport {
    public struct Layer: Sendable {
        public var name: String
        public var version: String
        public var kind: String
        public var digest: Digest
        public var diffID: Digest
        public var size: Int64
    }

    public struct Result: Sendable {
        /// The image manifest's digest.
        public var manifest: Digest
        /// Lowest first, as the manifest lists them.
        public var layers: [Layer]
    }

    public let home: StrataHome

    public init(home: StrataHome) { self.home = home }

    /// What an export writes: shared layers (a stack's order, top first), and for a VLFS the union over
    /// them whose private layer and whiteouts make the last layer; or one tree alone.
    private struct Composed {
        var name: String
        var layers: [SharedLayer] = []
        var union: Union?
        var flat: (tree: TreeEntry, store: ObjectStore, version: String)?
    }

    /// Writes the image of `source` (an LDF's path, `vlfs:NAME`, or an image reference) to
    /// `destination`: a layout directory (new or empty), or, when it ends in `.tar`, a tar of one.
    public func run(source: String, destination: String, tag: String) throws -> Result {
        try makeDirectories(home.path + "/cache")
        let scratch = try temporaryDirectory(in: home.path + "/cache", prefix: "oci-export-")
        defer { try? removeTree(scratch) }
        let composed = try resolve(source, scratch: scratch)
        guard destination.hasSuffix(".tar") else { return try write(composed, to: OCILayoutWriter(path: destination), tag: tag, scratch: scratch) }
        let parent = (destination as NSString).deletingLastPathComponent
        let layout = try temporaryDirectory(in: parent.isEmpty ? "." : parent, prefix: ".oci-layout-")
        defer { try? removeTree(layout) }
        let result = try write(composed, to: OCILayoutWriter(path: layout), tag: tag, scratch: scratch)
        try OCIArchive.write(layout: layout, to: destination)
        return result
    }

    private func resolve(_ source: String, scratch: String) throws -> Composed {
        if source.hasPrefix("vlfs:") {
            let name = String(source.dropFirst("vlfs:".count))
            let union = try Composition.union(of: try VLFSState(home: home, name: name), home: home)
            return Composed(name: name, layers: union.stack.layers, union: union)
        }
        if FileManager.default.fileExists(atPath: source) {
            let name = ((source as NSString).lastPathComponent as NSString).deletingPathExtension
            let stack = try LayerStack(layers: try Composition.layers(ldf: source, home: home), whiteoutDirectory: scratch + "/whiteouts")
            return Composed(name: name, layers: stack.layers)
        }
        let catalog = try Catalog(home: home)
        let version = try catalog.resolve(try ImageReference(parsing: source), for: .checkout, by: .current)
        let manifest = try catalog.manifest(of: version)
        guard !manifest.layers.isEmpty else {
            return Composed(name: version.name, flat: (manifest.filesystem, catalog.store, String(version.version)))
        }
        return Composed(name: version.name, layers: [], union: try snapshotUnion(manifest, store: catalog.store, scratch: scratch))
    }

    /// A snapshot of a VLFS as a union again: its layers (whose objects a snapshot copies into the
    /// catalog's store), its whiteout sets, and its private layer checked out into `scratch`.
    private func snapshotUnion(_ manifest: ImageManifest, store: ObjectStore, scratch: String) throws -> Union {
        let directory = try temporaryDirectory(in: scratch, prefix: "snapshot-")
        let whiteouts = directory + "/whiteouts"
        try makeDirectories(whiteouts)
        var layers: [SharedLayer] = []
        for reference in manifest.layers {
            let what = "layer \(reference.name) \(reference.version) of the image"
            let layer = try LayerManifest(decoding: try store.read(reference.layer), what: what)
            let metadata = try LayerMetadata(parsing: layer.metadata, file: what)
            let shared = SharedLayer(repository: reference.repository, metadata: metadata, digest: reference.layer, root: layer.filesystem, store: store,
                                     kind: Composition.kind(of: metadata), scripts: layer.scripts)
            layers.append(shared)
            guard let tree = reference.whiteouts else { continue }
            var paths: [String] = []
            try store.walk(tree.digest!) { path, entry in if entry.kind != .directory { paths.append(path) } }
            try AtomicFile.write(paths.map { $0 + "\n" }.joined(), to: whiteouts + "/" + shared.whiteoutKey)
        }
        if let privateLayer = manifest.privateLayer { try Checkout.run(privateLayer, from: store, to: directory + "/private") }
        return try Union(stack: try LayerStack(layers: layers, whiteoutDirectory: whiteouts), privateRoot: directory + "/private", whiteoutDirectory: whiteouts)
    }

    private func write(_ composed: Composed, to layout: OCILayoutWriter, tag: String, scratch: String) throws -> Result {
        var layers: [Layer] = []
        func emit(name: String, version: String?, kind: String, _ body: (OCILayerWriter) throws -> Void) throws {
            var diffID: Digest?
            let (digest, size) = try layout.blob { sink in
                let writer = try OCILayerWriter(name: "\(layout.path): layer \(name)", sink: sink)
                try body(writer)
                diffID = try writer.finish()
            }
            // A layer Strata did not version is named by its content, so importing it twice is one layer.
            layers.append(Layer(name: name, version: version ?? "0+" + diffID!.hex.prefix(12), kind: kind, digest: digest, diffID: diffID!, size: size))
        }
        let stack = composed.union?.stack.layers ?? composed.layers
        for layer in stack.reversed() {
            // The generated dpkg database is version 1 in every VLFS: its content names it.
            let version = layer.kind == .generated ? nil : layer.version
            try emit(name: layer.name, version: version, kind: layer.kind.rawValue) { try OCILayerContent.shared(layer, into: $0) }
        }
        if let union = composed.union {
            try emit(name: composed.name + "-private", version: nil, kind: "private") { try OCILayerContent.changes(of: union, into: $0, scratch: scratch) }
        }
        if let flat = composed.flat {
            try emit(name: composed.name, version: flat.version, kind: "image") { writer in
                try flat.store.walk(flat.tree.digest!) { path, entry in
                    try writer.add(entry, at: path, from: flat.store, linkKey: entry.linkGroup == 0 ? nil : String(entry.linkGroup))
                }
            }
        }

        let platform = OCI.Platform(architecture: Self.architecture(of: stack), os: "linux")
        let config = OCI.ImageConfig(architecture: platform.architecture, rootfs: .init(diff_ids: layers.map(\.diffID.description)),
                                     history: layers.map { .init(created_by: "strata: \($0.kind) layer \($0.name) \($0.version)") })
        let configBytes = try OCI.encode(config)
        let configBlob = try layout.blob(configBytes)
        let manifest = OCI.Manifest(
            config: OCI.Descriptor(mediaType: OCI.configMediaType, digest: configBlob.digest, size: configBlob.size),
            layers: layers.map { layer in
                OCI.Descriptor(mediaType: OCI.layerMediaType, digest: layer.digest, size: layer.size,
                               annotations: [OCI.layerNameAnnotation: layer.name, OCI.layerVersionAnnotation: layer.version, OCI.layerKindAnnotation: layer.kind])
            })
        let manifestBlob = try layout.blob(try OCI.encode(manifest))
        try layout.finish(index: OCI.Index(manifests: [
            OCI.Descriptor(mediaType: OCI.manifestMediaType, digest: manifestBlob.digest, size: manifestBlob.size,
                           annotations: [OCI.refNameAnnotation: tag], platform: platform),
        ]))
        return Result(manifest: manifestBlob.digest, layers: layers)
    }

    /// The layers' own architecture (Debian's names are the OCI names for amd64, arm64…), else this machine's.
    private static func architecture(of layers: [SharedLayer]) -> String {
        if let named = layers.map(\.metadata.architecture).first(where: { $0 != "all" }) { return named }
        #if arch(arm64)
        return "arm64"
        #else
        return "amd64"
        #endif
    }
}
