/// A layer unit as stored: its metadata (canonical control text), its filesystem tree, and its
/// configuration scripts (a tree too, holding `pre-install`… and, for `.deb` layers, the other
/// control members such as `conffiles`).
public struct LayerManifest: Hashable, Sendable {
    public var metadata: String
    public var filesystem: TreeEntry
    public var scripts: TreeEntry?

    public init(metadata: String, filesystem: TreeEntry, scripts: TreeEntry?) {
        self.metadata = metadata
        self.filesystem = filesystem
        self.scripts = scripts
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter()
        ManifestHeader.write(.layer, into: &writer)
        writer.string(metadata)
        filesystem.write(into: &writer)
        writer.byte(scripts == nil ? 0 : 1)
        scripts?.write(into: &writer)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8], what: String = "layer manifest") throws {
        self = try bytes.withUnsafeBytes { raw in
            var reader = BinaryReader(raw, what: what)
            try ManifestHeader.read(.layer, from: &reader)
            let metadata = try reader.string()
            let filesystem = try TreeEntry(reading: &reader)
            let scripts = try reader.byte() == 1 ? try TreeEntry(reading: &reader) : nil
            guard filesystem.kind == .directory, scripts?.kind ?? .directory == .directory else { throw reader.corrupt("layer roots must be directories") }
            guard reader.atEnd else { throw reader.corrupt("trailing bytes") }
            return LayerManifest(metadata: metadata, filesystem: filesystem, scripts: scripts)
        }
    }
}

/// A snapshot: the filesystem as seen (a tree, so any two images compare by tree digests), and,
/// for a snapshot of a VLFS, how it was composed: the layers with their whiteout sets and the private
/// layer. The image manifest's digest is the image's serial number.
public struct ImageManifest: Hashable, Sendable {
    public struct LayerReference: Hashable, Sendable {
        public var repository: String
        public var name: String
        public var version: String
        public var layer: Digest
        /// The layer's whiteout set: a tree whose entries mark hidden paths.
        public var whiteouts: TreeEntry?

        public init(repository: String, name: String, version: String, layer: Digest, whiteouts: TreeEntry?) {
            self.repository = repository
            self.name = name
            self.version = version
            self.layer = layer
            self.whiteouts = whiteouts
        }
    }

    public var filesystem: TreeEntry
    public var layers: [LayerReference]
    public var privateLayer: TreeEntry?
    /// Free-form facts about where the image came from (source path, VLFS name, host…), sorted by key on encoding.
    public var provenance: [String: String]

    public init(filesystem: TreeEntry, layers: [LayerReference] = [], privateLayer: TreeEntry? = nil, provenance: [String: String] = [:]) {
        self.filesystem = filesystem
        self.layers = layers
        self.privateLayer = privateLayer
        self.provenance = provenance
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter()
        ManifestHeader.write(.image, into: &writer)
        filesystem.write(into: &writer)
        writer.varint(layers.count)
        for layer in layers {
            writer.string(layer.repository)
            writer.string(layer.name)
            writer.string(layer.version)
            writer.digest(layer.layer)
            writer.byte(layer.whiteouts == nil ? 0 : 1)
            layer.whiteouts?.write(into: &writer)
        }
        writer.byte(privateLayer == nil ? 0 : 1)
        privateLayer?.write(into: &writer)
        writer.varint(provenance.count)
        for key in provenance.keys.sorted() {
            writer.string(key)
            writer.string(provenance[key]!)
        }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8], what: String = "image manifest") throws {
        self = try bytes.withUnsafeBytes { raw in
            var reader = BinaryReader(raw, what: what)
            try ManifestHeader.read(.image, from: &reader)
            let filesystem = try TreeEntry(reading: &reader)
            var layers: [LayerReference] = []
            for _ in 0..<(try reader.varint()) {
                layers.append(LayerReference(repository: try reader.string(), name: try reader.string(), version: try reader.string(),
                                             layer: try reader.digest(), whiteouts: try reader.byte() == 1 ? try TreeEntry(reading: &reader) : nil))
            }
            let privateLayer = try reader.byte() == 1 ? try TreeEntry(reading: &reader) : nil
            var provenance: [String: String] = [:]
            for _ in 0..<(try reader.varint()) {
                provenance[try reader.string()] = try reader.string()
            }
            guard reader.atEnd else { throw reader.corrupt("trailing bytes") }
            return ImageManifest(filesystem: filesystem, layers: layers, privateLayer: privateLayer, provenance: provenance)
        }
    }
}
