import StrataStore
import VLFS

/// One OCI layer read into the tree of a Strata configuration layer: members through
/// `ArchiveImporter.add` (which refuses names leaving the tree, names beneath a symlink, links to
/// nothing earlier), `.wh.NAME` as a deletion of NAME from the layers below (a 0:0 character device,
/// as `SharedLayer.deletes` reads it), `.wh..wh..opq` as the opaque mark of its directory.
struct OCILayerReader {
    /// Finds an entry of the layers already read, topmost first (for directories the layer does not list).
    let lower: ([String]) throws -> TreeEntry?
    let limits: OCIImport.Limits

    func read(_ reader: ArchiveReader, into batch: ObjectStore.Batch) throws -> (root: TreeEntry, statistics: IngestStatistics) {
        let builder = TreeBuilder(source: reader.name)
        var statistics = IngestStatistics()
        var members = 0
        var deletions: [[String]] = []
        var opaque: [[String]] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while var member = try reader.next() {
            members += 1
            guard members <= limits.layerEntries else { throw StoreError("\(reader.name): more than \(limits.layerEntries) members") }
            guard member.size <= limits.layerBytes - statistics.bytes else {
                throw StoreError("\(reader.name): member '\(member.path)' claims \(member.size) bytes, more than the layer's \(limits.layerBytes)-byte limit allows")
            }
            var path = try TreeBuilder.components(of: member.path, in: reader.name)
            if let name = path.last, name.hasPrefix(OCI.whiteoutPrefix) {
                path.removeLast()
                try addParents(path + [name], member: member.path, to: builder, source: reader.name)
                if name == OCI.opaqueMarker {
                    opaque.append(path)
                } else if !name.hasPrefix(OCI.whiteoutPrefix + OCI.whiteoutPrefix) {
                    // `.wh..wh.` names other than the opaque marker are aufs's bookkeeping, not content.
                    deletions.append(path + [String(name.dropFirst(OCI.whiteoutPrefix.count))])
                }
                continue
            }
            if member.kind == .characterDevice, member.device == 0 {
                throw StoreError("\(reader.name): member '\(member.path)' is a 0:0 character device, which a Strata layer reads as a deletion")
            }
            // overlayfs's own marks would change what lower layers show; OCI says that with `.wh.` names.
            member.xattrs.removeAll { $0.name.hasPrefix("trusted.overlay.") }
            try addParents(path, member: member.path, to: builder, source: reader.name)
            let link = try member.hardlinkTarget.map { try TreeBuilder.components(of: $0, in: reader.name) }
            try ArchiveImporter.add(member, at: path, linkedTo: link, from: reader, to: builder, into: batch, buffer: buffer, statistics: &statistics)
        }
        for directory in opaque {
            guard try builder.setAttribute(SharedLayer.opaqueAttribute, onDirectoryAt: directory) else {
                throw StoreError("\(reader.name): '\(directory.joined(separator: "/"))/\(OCI.opaqueMarker)' marks something that is not a directory")
            }
        }
        for path in deletions {
            // Deleted below and made again in this layer: a directory hides what was below, a file replaces it anyway.
            if try builder.contains(path) {
                try builder.setAttribute(SharedLayer.opaqueAttribute, onDirectoryAt: path)
            } else {
                try builder.add(TreeEntry(name: path.last!, kind: .characterDevice, mode: 0), at: path)
            }
        }
        return (try builder.store(into: batch), statistics)
    }

    /// The directories above `path` that this layer has not listed, with the metadata the layers below
    /// give them (a layer that names `etc/hostname` alone must not reset `/etc`'s owner and mode).
    /// Refused beneath what a lower layer has as anything but a directory: that is the symlink trick
    /// of writing through a link some earlier layer planted.
    private func addParents(_ path: [String], member: String, to builder: TreeBuilder, source: String) throws {
        for depth in 1..<max(path.count, 1) {
            let prefix = Array(path.prefix(depth))
            if try builder.contains(prefix) { continue }
            var directory = TreeEntry(name: prefix.last!, kind: .directory, mode: 0o755)
            if let below = try lower(prefix) {
                guard below.kind == .directory else {
                    throw StoreError("\(source): member '\(member)' lies beneath '\(prefix.joined(separator: "/"))', which a lower layer has as a \(below.kind)")
                }
                directory = below
                directory.digest = nil
                directory.xattrs.removeAll { $0.name.hasPrefix("trusted.overlay.") }
            }
            try builder.add(directory, at: prefix)
        }
    }
}
