import Foundation
import StrataLayers
import StrataStore

/// The filesystem of a template's configuration layer: what was configured through the template's
/// VLFS (its private layer and whiteouts, as a reset archived them) over its previous configuration
/// layer, which it replaces. A deletion of what a lower layer provides becomes a 0:0 character device
/// (see `SharedLayer.deletes`); a directory made again where a lower one was deleted becomes opaque.
public enum ConfigLayer {
    /// - Parameters:
    ///   - privateLayer: the archived private layer directory.
    ///   - whiteouts: the archived whiteouts of the layers of the template's stack.
    ///   - previous: the template's current configuration layer, whose objects `batch`'s store holds:
    ///     its content carries over, less what was deleted from it.
    ///   - union: the template's VLFS, for the metadata of directories that only lead to deletions.
    public static func filesystem(privateLayer: String, whiteouts: [(layer: SharedLayer, paths: Set<String>)], previous: SharedLayer?,
                                  union: Union, into batch: ObjectStore.Batch) throws -> TreeEntry {
        let builder = TreeBuilder(source: "configuration from \(privateLayer)")
        var links: [String: [String]] = [:]
        func add(_ entry: TreeEntry, at path: [String], linkSpace: String) throws {
            guard entry.kind != .directory, entry.linkGroup != 0 else { return try builder.add(entry, at: path) }
            let key = "\(linkSpace) \(entry.linkGroup)"
            if let first = links[key] { return try builder.link(path, to: first) }
            links[key] = path
            try builder.add(entry, at: path)
        }

        var previousDeletions: Set<String> = []
        var previousOpaque: Set<String> = []
        if let previous {
            let removed = whiteouts.first { $0.layer.digest == previous.digest }?.paths ?? []
            try builder.add(previous.root, at: [])
            try walk(previous.root.digest!, in: batch) { path, entry in
                if isBeneath(path, any: removed) { return false }
                if previous.deletes(entry) { previousDeletions.insert(path) }
                if previous.isOpaque(entry) { previousOpaque.insert(path) }
                try add(entry, at: components(path), linkSpace: "previous")
                return true
            }
        }

        var noCache: StatCache? = nil
        let imported = try DirectoryImporter.importTree(at: privateLayer, into: batch, statCache: &noCache).root
        try builder.add(imported, at: [])
        var privatePaths: Set<String> = []
        var privateFiles: Set<String> = []
        try walk(imported.digest!, in: batch) { path, entry in
            privatePaths.insert(path)
            if entry.kind != .directory {
                privateFiles.insert(path)
                try builder.remove(at: components(path))
            }
            try add(entry, at: components(path), linkSpace: "private")
            // Made where the previous layer deleted a name or hid the directories below: it still hides them.
            if entry.kind == .directory, previousDeletions.contains(path) || previousOpaque.contains(path) {
                try builder.setAttribute(SharedLayer.opaqueAttribute, onDirectoryAt: components(path))
            }
            return true
        }

        var deleted: Set<String> = []
        let deletions = Set(whiteouts.filter { $0.layer.digest != previous?.digest }.flatMap(\.paths))
        for path in deletions.sorted() where !isBeneath(path, any: deleted) && !isBeneath(path, any: privateFiles) {
            if privatePaths.contains(path) {
                // Removed, then made again as a directory: nothing of the lower directories shows in it.
                try builder.setAttribute(SharedLayer.opaqueAttribute, onDirectoryAt: components(path))
                continue
            }
            let parts = components(path)
            for depth in 1..<max(parts.count, 1) where try !builder.contains(Array(parts.prefix(depth))) {
                var directory = (try? union.view(parts.prefix(depth).joined(separator: "/")).directoryEntry)
                    ?? TreeEntry(name: "", kind: .directory, mode: 0o755)
                directory.xattrs.removeAll { $0.name == SharedLayer.opaqueAttribute.name }
                try builder.add(directory, at: Array(parts.prefix(depth)))
            }
            try builder.add(TreeEntry(name: "", kind: .characterDevice, mode: 0), at: parts)
            deleted.insert(path)
        }
        return try builder.store(into: batch)
    }

    private static func components(_ path: String) -> [String] { path.split(separator: "/").map(String.init) }

    /// Whether `path` or one of its ancestors is in `paths`.
    private static func isBeneath(_ path: String, any paths: Set<String>) -> Bool {
        guard !paths.isEmpty else { return false }
        var prefix = Substring(path)
        while true {
            if paths.contains(String(prefix)) { return true }
            guard let slash = prefix.lastIndex(of: "/") else { return false }
            prefix = prefix[..<slash]
        }
    }

    /// Visits a tree held by `batch` or its store, parents first; `visit` returns false to skip beneath an entry.
    private static func walk(_ root: Digest, prefix: String = "", in batch: ObjectStore.Batch, _ visit: (String, TreeEntry) throws -> Bool) throws {
        for entry in try batch.tree(root).entries {
            let path = prefix.isEmpty ? entry.name : prefix + "/" + entry.name
            if try visit(path, entry), entry.kind == .directory { try walk(entry.digest!, prefix: path, in: batch, visit) }
        }
    }
}
