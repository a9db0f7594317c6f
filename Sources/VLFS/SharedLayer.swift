import Foundation
import StrataLayers
import StrataLifecycle
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A read-only layer of a VLFS: one layer unit's filesystem tree from a repository's store.
public struct SharedLayer: Sendable {
    /// Top to bottom in a stack: what Strata generates from the others (the dpkg database), the
    /// configuration layers of templates, the software layers.
    public enum Kind: String, Sendable { case generated, config, software }

    public let repository: String
    public let metadata: LayerMetadata
    /// The layer manifest's digest: the identity of this layer instance.
    public let digest: Digest
    public let root: TreeEntry
    public let store: ObjectStore
    public let kind: Kind
    /// The unit's configuration scripts (and a `.deb`'s other control members), if it has any.
    public let scripts: TreeEntry?
    /// Where blobs missing from `store` come from: the served repository a mirror copies.
    public let remote: RemoteObjects?
    /// The layer's `PathList`, when its repository's index names one.
    public let paths: Digest?

    public init(repository: String, metadata: LayerMetadata, digest: Digest, root: TreeEntry, store: ObjectStore, kind: Kind, scripts: TreeEntry? = nil,
                remote: RemoteObjects? = nil, paths: Digest? = nil) {
        self.repository = repository
        self.metadata = metadata
        self.digest = digest
        self.root = root
        self.store = store
        self.kind = kind
        self.scripts = scripts
        self.remote = remote
        self.paths = paths
    }

    /// The layer as configuration sees it.
    public var installed: InstalledLayer {
        InstalledLayer(repository: repository, metadata: metadata, digest: digest, filesystem: root, scripts: scripts, store: store, remote: remote, paths: paths)
    }

    public var name: String { metadata.name }
    public var version: String { metadata.version.description }
    /// `name version`, as `user.strata.layer` reports it.
    public var label: String { "\(name) \(version)" }
    /// Names this instance's whiteout layer: a new instance (upgrade, reinstall) starts with none.
    public var whiteoutKey: String { "\(name)_\(version)@\(digest.hex.prefix(16))" }

    /// Whether `entry`, one of this layer's, deletes its name: a configuration layer carries the
    /// deletions of the template it was made from as 0:0 character devices (overlayfs's whiteouts),
    /// which hide the name in every layer below and are not shown themselves.
    public func deletes(_ entry: TreeEntry) -> Bool {
        kind == .config && entry.kind == .characterDevice && entry.device == 0
    }

    /// overlayfs's mark of a directory that hides the directories of the layers below (a directory
    /// removed and made again in a template).
    public static let opaqueAttribute = ExtendedAttribute(name: "trusted.overlay.opaque", value: Array("y".utf8))

    /// Whether `entry`, a directory of this configuration layer, hides the directories below it.
    public func isOpaque(_ entry: TreeEntry) -> Bool {
        kind == .config && entry.kind == .directory && entry.xattrs.contains(SharedLayer.opaqueAttribute)
    }

    /// Opens a regular file's blob read-only, first fetching it from the served repository when the
    /// mirror lacks it (a lazily mounted layer). A fetch that fails fails this open alone, with EIO,
    /// and says why in the daemon's log; the next open tries again.
    func openBlob(_ entry: TreeEntry) throws(FSError) -> Int32 {
        let fd = store.openObject(entry.digest!, flags: O_RDONLY)
        if fd >= 0 { return fd }
        guard errno == ENOENT, let remote else { throw FSError.last }
        do {
            return try remote.open(entry.digest!, size: entry.size)
        } catch {
            FileHandle.standardError.write(Data("strata: layer \(label): fetching \(entry.digest!) failed: \(error)\n".utf8))
            throw FSError(EIO)
        }
    }
}

/// Decoded tree manifests, shared by every layer and every stack of a mount. Trees are immutable and
/// named by digest, so an entry never goes stale; the cache keeps those used recently, up to a number
/// of entries in all (a tree's cost is its size), so that walking a huge VLFS or replacing layer
/// versions does not grow the daemon for good.
final class TreeCache: Sendable {
    private let trees = Mutex(BoundedCache<Digest, Tree>(capacity: 1 << 16))

    /// A tree of `layer`'s, fetched from its served repository when the mirror lacks it (a lazily mounted
    /// layer). A tree that cannot be had fails this request alone, with EIO, and the daemon's log says why.
    func tree(_ digest: Digest, layer index: Int, in stack: LayerStack) throws(FSError) -> Tree {
        if let tree = trees.withLock({ $0.value(digest, cost: TreeCache.cost) }) { return tree }
        let layer = stack.layers[index]
        let tree: Tree
        do {
            tree = try layer.store.tree(digest)
        } catch {
            FileHandle.standardError.write(Data("strata: layer \(layer.label): reading tree \(digest) failed: \(error)\n".utf8))
            throw FSError(EIO)
        }
        trees.withLock { $0.insert(tree, for: digest, cost: TreeCache.cost(tree)) }
        return tree
    }

    private static func cost(_ tree: Tree) -> Int { tree.entries.count + 1 }
}

/// Which shared layers' directories merge at each directory path visited, for one stack (the most
/// recently used ones).
final class DirectoryCache: Sendable {
    typealias Contributor = (layer: Int, tree: Digest)

    private let state = Mutex<(version: Int, contributors: BoundedCache<String, [Contributor]>)>((0, BoundedCache(capacity: 1 << 16)))

    var version: Int { state.withLock { $0.version } }

    func contributors(_ path: String) -> [Contributor]? { state.withLock { $0.contributors.value(path) } }

    /// Remembers a result unless the cache was invalidated since `version` was read.
    func remember(_ path: String, _ contributors: [Contributor], version: Int) {
        state.withLock { state in
            if state.version == version { state.contributors.insert(contributors, for: path) }
        }
    }

    func invalidate() {
        state.withLock { state in
            state.version += 1
            state.contributors.removeAll()
        }
    }
}
