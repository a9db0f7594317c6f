import Foundation
import Mirage
import StrataLayers
import StrataStore
import VLFS

/// Captures a VLFS as an image: the filesystem as seen, the layers it is composed of with their
/// whiteout sets, and its private layer — all stored in the catalog's store. The filesystem tree reuses
/// each shared layer's subtrees wherever one layer alone provides a directory, so its cost follows the
/// private layer and the merged directories, not the size of the VLFS.
public enum Snapshot {
    public static func manifest(of union: Union, name: String, catalog: Catalog) throws -> ImageManifest {
        let prepared = try Prepared(union, catalog: catalog)
        return try union.gate.closed { () throws -> ImageManifest in try capture(union, name: name, catalog: catalog, prepared: prepared) }
    }

    /// Hashing the private layer is the slow part of a snapshot. Done first while changes still flow,
    /// it leaves only the files changed meanwhile to read once the gate is closed, so the appliance
    /// waits for a walk of the private layer, not for its bytes to be hashed.
    struct Prepared {
        let batch: ObjectStore.Batch
        var hashed = StatCache()

        init(_ union: Union, catalog: Catalog) throws {
            // Writes the kernel still caches are hashed here too, not left for the gate's own flush.
            union.gate.flushPendingWrites()
            batch = try catalog.store.beginBatch()
            var cache: StatCache? = hashed
            // Files may change or vanish under this walk: whatever it misses, the capture reads.
            _ = try? DirectoryImporter.importTree(at: union.privateRoot, into: batch, statCache: &cache)
            hashed = cache ?? StatCache()
        }
    }

    /// The snapshot itself; the caller holds the union's gate closed.
    static func capture(_ union: Union, name: String, catalog: Catalog, prepared: Prepared) throws -> ImageManifest {
        let batch = prepared.batch
        var cache: StatCache? = prepared.hashed
        let privateLayer = try DirectoryImporter.importTree(at: union.privateRoot, into: batch, statCache: &cache).root
        let stack = union.stack
        var layers: [ImageManifest.LayerReference] = []
        for (index, layer) in stack.layers.enumerated() {
            let whiteouts = stack.whiteouts[index].all
            var whiteoutTree: TreeEntry?
            if !whiteouts.isEmpty {
                // A whiteout is a 0:0 character device, as overlayfs writes them.
                let builder = TreeBuilder(source: "whiteouts of \(layer.label)")
                for path in whiteouts.sorted() {
                    try builder.add(TreeEntry(name: "", kind: .characterDevice, mode: 0), at: try TreeBuilder.components(of: path, in: layer.label))
                }
                whiteoutTree = try builder.store(into: batch)
            }
            layers.append(ImageManifest.LayerReference(repository: layer.repository, name: layer.name, version: layer.version,
                                                       layer: layer.digest, whiteouts: whiteoutTree))
        }
        let privateTree = try catalog.store.treeIfPresent(privateLayer.digest!, batch: batch)
        let filesystem = try compose("", union: union, privateTree: privateTree, batch: batch)
        try batch.commit()
        for layer in stack.layers { _ = try ObjectTransfer.copy([layer.digest], from: layer.store, to: catalog.store) }
        return ImageManifest(filesystem: filesystem, layers: layers, privateLayer: privateLayer,
                             provenance: ["vlfs": name, "host": ProcessInfo.processInfo.hostName, "snapshot": ISO8601DateFormatter().string(from: Date())])
    }

    /// The filesystem a union shows, its directories stored into `batch` (files, and directories one
    /// layer alone provides, stay the layers' objects): a snapshot's tree without an image, for
    /// comparing a composition with another tree.
    public static func filesystem(of union: Union, into batch: ObjectStore.Batch) throws -> TreeEntry {
        var noCache: StatCache? = nil
        let privateLayer = try DirectoryImporter.importTree(at: union.privateRoot, into: batch, statCache: &noCache).root
        return try compose("", union: union, privateTree: try batch.store.treeIfPresent(privateLayer.digest!, batch: batch), batch: batch)
    }

    /// The tree of `path` as the union shows it.
    private static func compose(_ path: String, union: Union, privateTree: (String) throws -> Tree?, batch: ObjectStore.Batch) throws -> TreeEntry {
        let view = try union.view(path)
        if let reusable = view.reusableSharedDirectory { return reusable }
        var entries: [TreeEntry] = []
        for child in try union.list(path: path) {
            let childPath = path.isEmpty ? child.name : path + "/" + child.name
            let childView = try union.view(childPath)
            if childView.isDirectory {
                var entry = try compose(childPath, union: union, privateTree: privateTree, batch: batch)
                entry.name = child.name
                entries.append(entry)
            } else if childView.isPrivate {
                guard var entry = try privateTree(path)?.entry(named: child.name) else { throw StoreError("\(childPath) vanished during the snapshot") }
                entry.linkGroup = 0
                entries.append(entry)
            } else if var entry = childView.sharedEntry {
                // Hard-link groups are numbered per layer; across layers they would collide.
                entry.linkGroup = 0
                entries.append(entry)
            }
        }
        var directory = view.directoryEntry
        directory.digest = try batch.put(Tree(entries: entries).encoded())
        return directory
    }
}

extension ObjectStore {
    /// A reader of the private layer's directories by path, from a tree just stored in `batch`.
    func treeIfPresent(_ root: Digest, batch: ObjectStore.Batch) throws -> (String) throws -> Tree? {
        var cache: [String: Tree] = [:]
        return { path in
            if let tree = cache[path] { return tree }
            var digest = root
            for component in path.split(separator: "/") {
                guard let entry = try batch.tree(digest).entry(named: String(component)), entry.kind == .directory else { return nil }
                digest = entry.digest!
            }
            let tree = try batch.tree(digest)
            cache[path] = tree
            return tree
        }
    }
}
