/// Every path a layer provides, as a hash of the path and a hash of what is there: enough to find
/// where software layers overlap without reading their trees. A mirror fetches one of these per layer
/// (named in the repository's signed index) instead of the hundreds of shared directories' trees the
/// check would otherwise need before a lazy mount can start.
///
/// A directory's entry hash is 0, so two directories at one path agree whatever they hold (what is
/// below them is listed on its own), and a directory never agrees with anything else. Hashes are 64
/// bits: two paths that collide look like one path and can only make layers seem to overlap, which
/// the caller confirms on the trees.
public struct PathList: Sendable {
    public struct Entry: Sendable, Equatable {
        public let path: UInt64
        public let content: UInt64
    }

    /// Sorted by path hash.
    public let entries: [Entry]

    /// The paths below `root`, a layer's filesystem tree, read from `store`.
    public init(root: Digest, store: ObjectStore) throws {
        var entries: [Entry] = []
        try store.walk(root) { path, entry in
            entries.append(Entry(path: PathList.hash(path), content: entry.overlapHash))
        }
        self.entries = entries.sorted { $0.path < $1.path }
    }

    /// False when the layer has nothing at `path` (relative, no leading slash); true when it may
    /// (a colliding hash can make a missing path look present, never the reverse).
    public func mayContain(_ path: String) -> Bool {
        let wanted = PathList.hash(path)
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].path < wanted { low = middle + 1 } else { high = middle }
        }
        return low < entries.count && entries[low].path == wanted
    }

    public static func hash(_ path: String) -> UInt64 {
        var path = path
        return path.withUTF8 { SHA256.hash(UnsafeRawBufferPointer($0)).words.0 }
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter()
        writer.bytes.reserveCapacity(16 + entries.count * 16)
        ManifestHeader.write(.paths, into: &writer)
        writer.varint(entries.count)
        for entry in entries {
            withUnsafeBytes(of: entry.path.bigEndian) { writer.bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: entry.content.bigEndian) { writer.bytes.append(contentsOf: $0) }
        }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8], what: String) throws {
        entries = try bytes.withUnsafeBytes { raw in
            var reader = BinaryReader(raw, what: what)
            try ManifestHeader.read(.paths, from: &reader)
            let count = Int(try reader.varint())
            guard count <= (raw.count - reader.offset) / 16, raw.count - reader.offset == count * 16 else { throw reader.corrupt("length does not match \(count) paths") }
            var entries: [Entry] = []
            entries.reserveCapacity(count)
            for index in 0..<count {
                let offset = reader.offset + index * 16
                let entry = Entry(path: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
                                  content: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)))
                if let last = entries.last, last.path > entry.path { throw reader.corrupt("paths out of order") }
                entries.append(entry)
            }
            return entries
        }
    }
}

extension TreeEntry {
    /// Whether two layers may both provide these entries at one path: the same content and metadata,
    /// times and hard-link grouping aside. `overlapHash` hashes exactly these fields.
    public func isIdenticalForOverlap(_ other: TreeEntry) -> Bool {
        kind == other.kind && mode == other.mode && uid == other.uid && gid == other.gid && digest == other.digest && target == other.target
            && device == other.device && xattrs == other.xattrs
    }

    /// 0 for a directory; otherwise a nonzero hash of what `isIdenticalForOverlap` compares.
    var overlapHash: UInt64 {
        if kind == .directory { return 0 }
        var writer = BinaryWriter()
        writer.byte(kind.rawValue)
        writer.varint(mode)
        writer.varint(uid)
        writer.varint(gid)
        writer.byte(digest == nil ? 0 : 1)
        if let digest { writer.digest(digest) }
        writer.string(target ?? "")
        writer.varint(device)
        writer.varint(xattrs.count)
        for xattr in xattrs {
            writer.string(xattr.name)
            writer.data(xattr.value)
        }
        return max(1, SHA256.hash(writer.bytes).words.0)
    }
}
