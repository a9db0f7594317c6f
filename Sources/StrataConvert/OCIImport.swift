import Foundation
import StrataLayers
import StrataStore
import VLFS

/// `strata import oci`: an OCI image (a layout directory, or a tar of one) as layers of a local
/// repository, one per OCI layer, and an LDF that composes them in the image's order.
///
/// Each OCI layer becomes a configuration layer (`Layer-Type: config`): OCI layers overlap and delete
/// each other's files, which configuration layers may and software layers may not. A layer named by
/// Strata's annotations (an image `strata export oci` wrote) keeps that name and version, and when the
/// repository already has that unit with the same files, the unit is used as it is; other layers are
/// named IMAGE-layerN, versioned by their `diff_id`. The image is untrusted input: every document and
/// blob is bounded by `Limits` and checked against its digest, every layer's uncompressed tar against
/// its `diff_id`, and layer members are refused when they would leave the tree or pass through a link
/// (`OCILayerReader`).
public struct OCIImport {
    public struct Limits: Sendable {
        /// `index.json`, `oci-layout`, manifests and configurations.
        public var documentBytes: UInt64 = 4 << 20
        /// One blob as stored (a compressed layer).
        public var blobBytes: UInt64 = 64 << 30
        /// The files of one layer, uncompressed.
        public var layerBytes: UInt64 = 256 << 30
        public var layerEntries = 10_000_000

        public init() {}
    }

    public struct Result: Sendable {
        /// The manifest imported.
        public var manifest: Digest
        /// Lowest first.
        public var layers: [LayerRecord]
        /// Those the repository had already.
        public var reused: Set<String>
    }

    public let home: StrataHome
    public let repositoryName: String
    public let limits: Limits

    public init(home: StrataHome, repositoryName: String, limits: Limits = Limits()) {
        self.home = home
        self.repositoryName = repositoryName
        self.limits = limits
    }

    /// - Parameters:
    ///   - tag: which image of the layout's index (its `org.opencontainers.image.ref.name`); may be
    ///     omitted when the index has one image.
    ///   - name: the prefix of the names of layers without Strata annotations.
    public func run(source: String, tag: String?, name: String, ldf: String?) throws -> Result {
        let repository = try ImportTarget.repository(repositoryName, in: home)
        try StrataHome.checkName(name)
        try makeDirectories(home.path + "/cache")
        let scratch = try temporaryDirectory(in: home.path + "/cache", prefix: "oci-import-")
        defer { try? removeTree(scratch) }

        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { throw StoreError("\(source): no such layout or archive") }
        var directory = source
        if !isDirectory.boolValue {
            directory = scratch + "/layout"
            try OCIArchive.unpack(source, into: directory, limits: limits)
        }
        let layout = try OCILayoutReader(directory: directory, name: source, limits: limits)
        let manifestDescriptor = try Self.choose(from: layout.index, tag: tag, in: source)
        let manifest = try layout.document(manifestDescriptor, as: OCI.Manifest.self, what: "image manifest")
        let config = try layout.document(manifest.config, as: OCI.ImageConfig.self, what: "image configuration")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw StoreError("\(source): the configuration lists \(config.rootfs.diff_ids.count) diff_ids for \(manifest.layers.count) layers")
        }

        let batch = try repository.store.beginBatch()
        var roots: [TreeEntry] = []
        var units: [(metadata: LayerMetadata, digest: Digest, existing: LayerRecord?)] = []
        for (number, descriptor) in manifest.layers.enumerated() {
            let what = "layer \(number + 1) (\(descriptor.digest))"
            guard OCI.readableLayerMediaTypes.contains(descriptor.mediaType) else { throw StoreError("\(source): \(what) has media type \(descriptor.mediaType), not a layer tar") }
            let annotations = descriptor.annotations ?? [:]
            let diffID = config.rootfs.diff_ids[number]
            let metadata = try LayerMetadata(
                name: annotations[OCI.layerNameAnnotation] ?? "\(name)-layer\(number + 1)",
                version: try DebianVersion(annotations[OCI.layerVersionAnnotation] ?? "0+" + (Digest(diffID)?.hex.prefix(12) ?? descriptor.digest.suffix(12))),
                description: "layer \(number + 1) of the OCI image \(source) (\(descriptor.digest))",
                extraFields: [MetadataField(Composition.layerTypeField, "config")])
            try Self.checkDiffID(diffID, of: layout.open(descriptor, what: what), name: "\(source): \(what)", limit: limits.layerBytes)
            let reader = try ArchiveReader(descriptor: layout.open(descriptor, what: what), name: "\(source): \(what)")
            let below = roots
            let lower = { (path: [String]) throws -> TreeEntry? in try Self.entry(at: path, in: below, batch: batch) }
            let root = try OCILayerReader(lower: lower, limits: limits).read(reader, into: batch).root
            roots.append(root)
            // The unit the repository has under this name and version: the same if its files are these.
            if let existing = try repository.find(metadata.name, version: metadata.version.description) {
                guard try repository.layerManifest(existing).filesystem.digest == root.digest else {
                    throw StoreError("\(source): \(what) is \(metadata.name) \(metadata.version) by its annotations, and \(repository.path) has a different \(metadata.name) \(metadata.version): import into another repository")
                }
                units.append((metadata, existing.digest, existing))
            } else {
                units.append((metadata, try batch.put(LayerManifest(metadata: metadata.controlText, filesystem: root, scripts: nil).encoded()), nil))
            }
        }
        try batch.commit()
        let records = try units.map { try $0.existing ?? repository.registerStoredLayer($0.digest) }
        if let ldf { try writeLDF(ldf, records: records, source: source, manifest: manifestDescriptor.digest) }
        let manifestDigest = try OCI.digest(of: manifestDescriptor, in: source)
        return Result(manifest: manifestDigest, layers: records, reused: Set(units.compactMap { $0.existing?.name }))
    }

    /// Refuses a layer whose uncompressed tar is not the one the configuration names (its `diff_id`), or
    /// that uncompresses past `limit` bytes (the tar's headers and padding count with its files).
    static func checkDiffID(_ diffID: String, of file: consuming FileDescriptor, name: String, limit: UInt64) throws {
        guard let expected = Digest(diffID), diffID.hasPrefix("sha256:") else { throw StoreError("\(name): diff_id '\(diffID)' is not sha256:<64 hex digits>") }
        let reader = try ArchiveReader(descriptor: file, name: name, decompressOnly: true)
        guard try reader.next() != nil else { throw StoreError("\(name): empty") }
        var hasher = SHA256()
        var total: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = try reader.read(into: buffer)
            if n == 0 { break }
            total += UInt64(n)
            guard total <= limit + limit / 8 else { throw StoreError("\(name): uncompresses to more than the layer's limit allows") }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        let found = hasher.finalize()
        guard found == expected else { throw StoreError("\(name): its tar hashes to \(found), the image configuration's diff_id is \(diffID)") }
    }

    /// The image manifest of the index named by `tag`, or its only one.
    static func choose(from index: OCI.Index, tag: String?, in source: String) throws -> OCI.Descriptor {
        let manifests = index.manifests.filter { OCI.readableManifestMediaTypes.contains($0.mediaType) }
        if manifests.isEmpty, index.manifests.contains(where: { $0.mediaType == OCI.indexMediaType }) {
            throw StoreError("\(source): index.json names image indexes (a multi-platform image), not images: copy one platform into a layout first (skopeo copy --override-arch ARCH)")
        }
        if let tag {
            guard let found = manifests.first(where: { $0.annotations?[OCI.refNameAnnotation] == tag }) else {
                throw StoreError("\(source): no image tagged '\(tag)' in index.json (tags: \(Self.tags(manifests)))")
            }
            return found
        }
        guard manifests.count == 1 else {
            throw StoreError("\(source): index.json lists \(manifests.count) image manifests; name one with --tag (tags: \(Self.tags(manifests)))")
        }
        return manifests[0]
    }

    private static func tags(_ manifests: [OCI.Descriptor]) -> String {
        let tags = manifests.compactMap { $0.annotations?[OCI.refNameAnnotation] }
        return tags.isEmpty ? "none" : tags.joined(separator: ", ")
    }

    /// The entry at `path` in the topmost of `roots` that has it, or nil when none has it or the
    /// topmost that speaks of it deletes it or has a non-directory above it.
    static func entry(at path: [String], in roots: [TreeEntry], batch: ObjectStore.Batch) throws -> TreeEntry? {
        layers: for root in roots.reversed() {
            var entry = root
            for component in path {
                guard entry.kind == .directory else { return nil }
                guard let child = try batch.tree(entry.digest!).entry(named: component) else { continue layers }
                if child.kind == .characterDevice && child.device == 0 { return nil }
                entry = child
            }
            return entry
        }
        return nil
    }

    /// The LDF of the image: its layers held at their versions, topmost first (the order in which an
    /// LDF stacks configuration layers).
    private func writeLDF(_ path: String, records: [LayerRecord], source: String, manifest: String) throws {
        var text = "# the OCI image \(source) (\(manifest)), imported by strata import oci\n"
        for record in records.reversed() { text += "=\(repositoryName)/\(record.name) \(record.version)\n" }
        try AtomicFile.write(text, to: path)
    }
}
