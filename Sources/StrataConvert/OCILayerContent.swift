import StrataStore
import VLFS

/// What goes into each OCI layer of an export.
enum OCILayerContent {
    /// A shared layer's tree as it is stored; a configuration layer's deletions (0:0 character devices)
    /// as `.wh.` members, its opaque directories followed by their `.wh..wh..opq` marker.
    static func shared(_ layer: SharedLayer, into writer: OCILayerWriter) throws {
        // The root too (as `./`), so that importing the layer again gives back the same tree.
        try writer.add(layer.root, at: ".", from: nil)
        try layer.store.walk(layer.root.digest!) { path, entry in
            if layer.deletes(entry) { return try writer.whiteout(path) }
            try writer.add(entry, at: path, from: layer.store, linkKey: entry.linkGroup == 0 ? nil : String(entry.linkGroup))
            if layer.isOpaque(entry) { try writer.opaque(path) }
        }
    }

    /// What a VLFS's private layer and whiteout sets change in what its shared layers show by
    /// themselves: every path that shows otherwise (the union's entry), every path that no longer
    /// shows (`.wh.`), and the directories on the way to them. Only directories that lead to a private
    /// path or a whiteout are visited: everywhere else the union is the shared layers' by construction.
    static func changes(of union: Union, into writer: OCILayerWriter, scratch: String) throws {
        // The private layer read once into a scratch store: its entries, and its files' contents by digest.
        let store = try ObjectStore(root: scratch + "/private-store", create: true)
        let batch = try store.beginBatch()
        var noCache: StatCache? = nil
        let privateRoot = try DirectoryImporter.importTree(at: union.privateRoot, into: batch, statCache: &noCache).root
        try batch.commit()

        var visited: Set<String> = [""]
        func visit(_ path: String) {
            var path = path
            while !path.isEmpty, visited.insert(path).inserted { path = Beneath.split(path).parent }
        }
        try store.walk(privateRoot.digest!) { path, _ in visit(path) }
        for whiteouts in union.stack.whiteouts { whiteouts.all.forEach(visit) }

        let lower = try BareUnion.of(union.stack.layers, scratch: scratch)
        func privateEntry(_ path: String) throws -> TreeEntry {
            var entry = privateRoot
            for component in path.split(separator: "/") {
                guard entry.kind == .directory, let child = try store.tree(entry.digest!).entry(named: String(component)) else {
                    throw StoreError("/\(path) changed in the private layer while it was exported")
                }
                entry = child
            }
            return entry
        }

        func changes(in directory: String) throws {
            let shown = Set(try union.list(path: directory).map(\.name))
            let below = (try? lower.view(directory))?.isDirectory == true ? Set(try lower.list(path: directory).map(\.name)) : []
            for name in shown.union(below).sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                let path = directory.isEmpty ? name : directory + "/" + name
                guard shown.contains(name) else {
                    try writer.whiteout(path)
                    continue
                }
                let view = try union.view(path)
                let before: Union.View? = try below.contains(name) ? lower.view(path) : nil
                let changed = view.isPrivate || before == nil || before?.sharedEntry != view.sharedEntry
                if view.isDirectory {
                    if changed || visited.contains(path) { try writer.add(view.directoryEntry, at: path, from: nil) }
                    if visited.contains(path) { try changes(in: path) }
                } else if view.isPrivate {
                    let entry = try privateEntry(path)
                    try writer.add(entry, at: path, from: store, linkKey: entry.linkGroup == 0 ? nil : "private \(entry.linkGroup)")
                } else if changed, let (layer, entry) = union.sharedEntry(at: path) {
                    try writer.add(entry, at: path, from: layer.store)
                }
            }
        }
        try changes(in: "")
    }
}
