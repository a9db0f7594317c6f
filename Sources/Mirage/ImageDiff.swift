import StrataStore

/// One difference between two images.
public struct ImageChange: Hashable, Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        case added, deleted
        /// Content or type changed.
        case modified
        /// Same content; mode, owner, times or extended attributes changed.
        case metadata
    }

    /// What one side has at the path.
    public struct Side: Hashable, Sendable, Codable {
        public var kind: String
        /// Content digest of a file, tree digest of a directory.
        public var digest: Digest?
        /// Permission bits in octal, as `ls` users read them.
        public var mode: String
        public var uid: UInt32
        public var gid: UInt32
        public var size: UInt64
        public var target: String?

        init(_ entry: TreeEntry) {
            kind = entry.kind.description
            digest = entry.digest
            mode = String(entry.mode, radix: 8)
            uid = entry.uid
            gid = entry.gid
            size = entry.size
            target = entry.target
        }
    }

    /// Absolute within the image (`/etc/passwd`).
    public var path: String
    public var change: Kind
    public var old: Side?
    public var new: Side?
    /// For images snapshot from a VLFS, what provides the path (the new image's provider; the old
    /// image's for a deletion): `repository/layer version`, or `private`.
    public var layer: String?
}

/// Differences between two images, in time proportional to the difference: it is `TreeDiff` over the
/// images' filesystems, which skips every subtree whose digest is equal on both sides.
public enum ImageDiff {
    /// An added or deleted directory is one change unless `expandDirectories`, which lists its contents too.
    public static func compare(_ old: ImageManifest, _ new: ImageManifest, store: ObjectStore, expandDirectories: Bool = false) throws -> [ImageChange] {
        var oldProviders = LayerAttribution(image: old, store: store)
        var newProviders = LayerAttribution(image: new, store: store)
        var changes: [ImageChange] = []
        if !old.filesystem.sameMetadata(ignoringDigestOf: new.filesystem) {
            changes.append(ImageChange(path: "/", change: .metadata, old: .init(old.filesystem), new: .init(new.filesystem),
                                       layer: try newProviders.provider(of: "")))
        }
        try TreeDiff.compare(old.filesystem.digest, new.filesystem.digest, oldStore: store, newStore: store,
                             expandDirectories: expandDirectories) { path, change in
            switch change {
            case .added(let entry):
                changes.append(ImageChange(path: "/" + path, change: .added, new: .init(entry), layer: try newProviders.provider(of: path)))
            case .deleted(let entry):
                changes.append(ImageChange(path: "/" + path, change: .deleted, old: .init(entry), layer: try oldProviders.provider(of: path)))
            case .modified(let a, let b):
                changes.append(ImageChange(path: "/" + path, change: .modified, old: .init(a), new: .init(b), layer: try newProviders.provider(of: path)))
            case .metadata(let a, let b):
                changes.append(ImageChange(path: "/" + path, change: .metadata, old: .init(a), new: .init(b), layer: try newProviders.provider(of: path)))
            }
        }
        return changes
    }
}

/// Which layer of a VLFS snapshot provides a path: the private layer first, then the layers in the
/// image's order (top first), skipping a layer whose whiteout set hides the path.
struct LayerAttribution {
    let image: ImageManifest
    var lookup: TreeLookup
    private var layerRoots: [Int: TreeEntry] = [:]

    init(image: ImageManifest, store: ObjectStore) {
        self.image = image
        lookup = TreeLookup(store: store)
    }

    mutating func provider(of path: String) throws -> String? {
        guard !image.layers.isEmpty || image.privateLayer != nil else { return nil }
        if let privateLayer = image.privateLayer, try lookup.entry(at: path, under: privateLayer) != nil { return "private" }
        for (index, layer) in image.layers.enumerated() {
            if let whiteouts = layer.whiteouts, try hides(whiteouts, path) { continue }
            guard let root = try root(of: index) else { continue }
            if try lookup.entry(at: path, under: root) != nil { return "\(layer.repository)/\(layer.name) \(layer.version)" }
        }
        return nil
    }

    /// A whiteout set hides a path it lists, and everything below a non-directory it lists.
    private mutating func hides(_ whiteouts: TreeEntry, _ path: String) throws -> Bool {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += (prefix.isEmpty ? "" : "/") + component
            guard let entry = try lookup.entry(at: prefix, under: whiteouts) else { return false }
            if entry.kind != .directory || prefix.utf8.count == path.utf8.count { return true }
        }
        return false
    }

    private mutating func root(of index: Int) throws -> TreeEntry? {
        if let root = layerRoots[index] { return root }
        guard let bytes = try? lookup.store.read(image.layers[index].layer) else { return nil }
        let root = try LayerManifest(decoding: bytes, what: "layer \(image.layers[index].name)").filesystem
        layerRoots[index] = root
        return root
    }
}
