import StrataLayers
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A read-only layer of a VLFS: one layer unit's filesystem tree from a repository's store.
public struct SharedLayer: Sendable {
    public enum Kind: String, Sendable { case software, config }

    public let repository: String
    public let metadata: LayerMetadata
    /// The layer manifest's digest: the identity of this layer instance.
    public let digest: Digest
    public let root: TreeEntry
    public let store: ObjectStore
    public let kind: Kind

    public init(repository: String, metadata: LayerMetadata, digest: Digest, root: TreeEntry, store: ObjectStore, kind: Kind) {
        self.repository = repository
        self.metadata = metadata
        self.digest = digest
        self.root = root
        self.store = store
        self.kind = kind
    }

    public var name: String { metadata.name }
    public var version: String { metadata.version.description }
    /// `name version`, as `user.strata.layer` reports it.
    public var label: String { "\(name) \(version)" }
    /// Names this instance's whiteout layer: a new instance (upgrade, reinstall) starts with none.
    public var whiteoutKey: String { "\(name)_\(version)@\(digest.hex.prefix(16))" }

    /// The blob file that holds a regular file's content.
    public func blobPath(_ entry: TreeEntry) -> String { store.path(of: entry.digest!) }
}

/// Decoded tree manifests, shared by every layer and every stack of a mount. Trees are immutable and
/// named by digest, so an entry never goes stale; the cache only grows with the directories visited.
final class TreeCache: Sendable {
    private let trees = Mutex<[Digest: Tree]>([:])

    func tree(_ digest: Digest, in store: ObjectStore) throws(FSError) -> Tree {
        if let tree = trees.withLock({ $0[digest] }) { return tree }
        guard let bytes = try? store.read(digest), let tree = try? Tree(decoding: bytes, what: "tree \(digest)") else { throw FSError(EIO) }
        trees.withLock { $0[digest] = tree }
        return tree
    }
}

/// Which shared layers' directories merge at each directory path visited, for one stack.
final class DirectoryCache: Sendable {
    typealias Contributor = (layer: Int, tree: Digest)

    private let state = Mutex<(version: Int, contributors: [String: [Contributor]])>((0, [:]))

    var version: Int { state.withLock { $0.version } }

    func contributors(_ path: String) -> [Contributor]? { state.withLock { $0.contributors[path] } }

    /// Remembers a result unless the cache was invalidated since `version` was read.
    func remember(_ path: String, _ contributors: [Contributor], version: Int) {
        state.withLock { state in
            if state.version == version { state.contributors[path] = contributors }
        }
    }

    func invalidate() {
        state.withLock { state in
            state.version += 1
            state.contributors.removeAll()
        }
    }
}
