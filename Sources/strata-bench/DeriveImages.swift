import Foundation
import Mirage
import StrataLayers
import StrataStore

/// `strata-bench derive HOME BASE COUNT CHANGES`: checks in COUNT images named `family-N`, each the
/// image BASE with CHANGES files given new contents, through the catalog's API (as a VLFS snapshot
/// would be), each composed with a made-up `openssl` layer of a different version so that layer
/// search has something to find. Building the images this way costs only the trees they change, so
/// a family of a hundred 10⁵-file images is made in seconds.
func deriveImages(_ arguments: [String]) throws {
    guard arguments.count == 4, let count = Int(arguments[2]), let changes = Int(arguments[3]) else {
        throw CatalogError("usage: strata-bench derive HOME BASE COUNT CHANGES")
    }
    let catalog = try Catalog(home: StrataHome(explicit: arguments[0]))
    let base = try catalog.manifest(of: try catalog.resolve(try ImageReference(parsing: arguments[1])))
    var files: [String] = []
    try catalog.store.walk(base.filesystem.digest!) { path, entry in if entry.kind == .regular { files.append(path) } }
    let layer = try catalog.store.put(LayerManifest(metadata: "Layer: openssl\n", filesystem: base.filesystem, scripts: nil).encoded())
    for image in 1...count {
        var root = base.filesystem
        for change in 0..<changes {
            let path = files[(image * 7919 + change * 104_729) % files.count].split(separator: "/").map(String.init)
            let batch = try catalog.store.beginBatch()
            root = try replaceFile(in: root, at: path[...], contents: Array("image \(image) change \(change)\n".utf8), store: catalog.store, batch: batch)
            try batch.commit()
        }
        let reference = ImageManifest.LayerReference(repository: "debian", name: "openssl", version: "3.0.\(image % 20)-1", layer: layer, whiteouts: nil)
        try catalog.checkin(manifest: ImageManifest(filesystem: root, layers: [reference], provenance: ["benchmark": "derived \(image)"]),
                            name: "family-\(image)")
    }
}

/// Stores new contents for one file and the trees above it, returning the new root entry.
func replaceFile(in directory: TreeEntry, at path: ArraySlice<String>, contents: [UInt8], store: ObjectStore, batch: ObjectStore.Batch) throws -> TreeEntry {
    var entries = try store.tree(directory.digest!).entries
    let index = entries.firstIndex { $0.name == path.first! }!
    if path.count == 1 {
        entries[index].digest = try batch.put(contents)
        entries[index].size = UInt64(contents.count)
    } else {
        entries[index] = try replaceFile(in: entries[index], at: path.dropFirst(), contents: contents, store: store, batch: batch)
    }
    var updated = directory
    updated.digest = try batch.put(Tree(entries: entries).encoded())
    return updated
}
