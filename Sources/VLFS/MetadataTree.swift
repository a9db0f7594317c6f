import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// The kernel path's picture of a stack (issue 14): the shared layers composed as the VLFS shows them
/// (configuration layers' deletions and opaque directories applied), written out as a tree of metadata
/// alone for `mkfs.erofs`. Each regular file is a hole of its size carrying overlayfs's metacopy mark
/// and an absolute redirect to its blob, `/ab/cdef…`, which kernel overlayfs looks up in its data-only
/// lower layers: the stores' `objects/sha256` directories. The kernel then serves metadata from the
/// image and data from the blobs, with no daemon.
public struct MetadataTree: Sendable {
    public let stack: LayerStack

    public init(stack: LayerStack) { self.stack = stack }

    static let overlayPrefix = "trusted.overlay."
    static let metacopy = ExtendedAttribute(name: "trusted.overlay.metacopy", value: [])
    /// Changes whenever the tree written for the same stack would differ.
    static let format = "strata-metadata-tree 1"

    /// The object directories holding the stack's blobs, top layer's first, each once: overlayfs's
    /// data-only layers, searched in this order for a redirect. A blob has the same name and bytes in
    /// every store, so whichever holds it serves the same file.
    public var dataDirectories: [String] {
        var seen = Set<String>()
        return stack.layers.map(\.store.objectsPath).filter { seen.insert($0).inserted }
    }

    /// Names the image: everything its bytes depend on (the layers in order and where their blobs are).
    public var key: Digest {
        let lines = [MetadataTree.format] + stack.layers.map { "\($0.kind.rawValue) \($0.digest) \($0.store.objectsPath)" }
        return SHA256.hash(Array(lines.joined(separator: "\n").utf8))
    }

    /// Writes the tree into `destination` (new), composing it through a union of the stack over an empty
    /// private layer made in `scratch` (new), so that it shows exactly what the FUSE VLFS shows.
    public func write(to destination: String, scratch: String) throws {
        let union = try Union(stack: stack, privateRoot: scratch + "/private", whiteoutDirectory: scratch + "/whiteouts")
        guard mkdir(destination, 0o700) == 0 else { throw SystemError("mkdir", destination) }
        let checkout = try Checkout(into: destination, from: stack.layers[0].store)
        checkout.sizesOnly = true
        var linkGroups: [String: UInt32] = [:]
        try write("", union: union, into: checkout, linkGroups: &linkGroups)
        if let root = stack.layers.last?.root { try checkout.applyMetadata(MetadataTree.withoutOverlayMarks(root), at: "") }
    }

    private func write(_ directory: String, union: Union, into checkout: Checkout, linkGroups: inout [String: UInt32]) throws {
        for child in try union.list(path: directory) {
            let path = Union.join(directory, child.name)
            guard let (layer, entry) = union.sharedEntry(at: path) else { throw StoreError("/\(path): listed but not found in the stack") }
            var staged = MetadataTree.withoutOverlayMarks(entry)
            switch entry.kind {
            case .regular where entry.size > 0:
                let hex = entry.digest!.hex
                staged.xattrs += [MetadataTree.metacopy, ExtendedAttribute(name: "trusted.overlay.redirect", value: Array("/\(hex.prefix(2))/\(hex.dropFirst(2))".utf8))]
            case .characterDevice where entry.device == 0:
                throw StoreError("/\(path) (layer \(layer.label)) is a 0:0 character device, which kernel overlayfs would take for a deletion: this stack needs the FUSE VLFS")
            default:
                break
            }
            // Groups are numbered per layer; the image holds every layer's.
            if entry.linkGroup != 0 {
                let key = "\(layer.whiteoutKey) \(entry.linkGroup)"
                staged.linkGroup = linkGroups[key] ?? UInt32(linkGroups.count + 1)
                linkGroups[key] = staged.linkGroup
            }
            try checkout.place(staged, at: path)
            if entry.kind == .directory {
                try write(path, union: union, into: checkout, linkGroups: &linkGroups)
                // Filling it changed its time.
                try checkout.applyMetadata(staged, at: path)
            }
        }
    }

    /// overlayfs's own attributes are not content: the union already applied the opaque marks of
    /// configuration layers, and the kernel would read any other as an instruction.
    static func withoutOverlayMarks(_ entry: TreeEntry) -> TreeEntry {
        var entry = entry
        entry.xattrs.removeAll { $0.name.hasPrefix(overlayPrefix) }
        return entry
    }
}
