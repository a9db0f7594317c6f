import Foundation
import StrataStore

/// One OCI layer as it is written: a tar (pax) stream, gzip-compressed, into a layout's blob. The tar
/// bytes are hashed on their way to the compressor: that digest is the layer's `diff_id`.
///
/// Members come as tree entries with paths relative to the root. Owners are numeric, times the
/// entries' own, and overlayfs's private attributes (`trusted.overlay.*`) are left out: what they say
/// (a directory hides the layers below) is said with `.wh..wh..opq` members instead.
final class OCILayerWriter {
    private let tar: ArchiveWriter
    private let gzip: ArchiveWriter
    private var diffHasher: SHA256? = SHA256()
    /// The first path written of each hard-link set, by a key the caller chooses.
    private var linkTargets: [String: String] = [:]
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)

    /// - Parameter sink: receives the compressed layer.
    init(name: String, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        let gzip = try ArchiveWriter(name: name, format: .raw, compression: .gzip, sink: sink)
        try gzip.begin(ArchiveMember(path: "layer.tar", kind: .regular, mode: 0o644))
        self.gzip = gzip
        var hashTar: ((UnsafeRawBufferPointer) -> Void)?
        tar = try ArchiveWriter(name: name, format: .tar, compression: .none) { bytes in
            hashTar?(bytes)
            try gzip.write(bytes)
        }
        hashTar = { [unowned self] in self.diffHasher!.update($0) }
    }

    deinit { buffer.deallocate() }

    /// Writes `entry` at `path`: a regular file's content from `store`. Members of one hard-link set
    /// (same `linkKey`) after the first are written as links to it.
    func add(_ entry: TreeEntry, at path: String, from store: ObjectStore?, linkKey: String? = nil) throws {
        if entry.kind == .socket { return }  // tar has no sockets; a socket is made by whoever listens on it
        var member = ArchiveMember(path: path, kind: entry.kind, mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime,
                                   size: entry.size, symlinkTarget: entry.target, device: entry.device,
                                   xattrs: entry.xattrs.filter { !$0.name.hasPrefix("trusted.overlay.") })
        if let linkKey, entry.kind != .directory {
            if let first = linkTargets[linkKey] {
                member.hardlinkTarget = first
                return try tar.begin(member)
            }
            linkTargets[linkKey] = path
        }
        try tar.begin(member)
        guard entry.kind == .regular, entry.size > 0 else { return }
        guard let store, let digest = entry.digest else { throw StoreError("\(path): no content to write") }
        let file: FileDescriptor
        do {
            file = try store.open(digest)
        } catch {
            throw StoreError("/\(path): its content \(digest) is not in \(store.root) (a lazily mirrored layer: fetch it whole first): \(error)")
        }
        var remaining = entry.size
        while remaining > 0 {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(UInt64(buffer.count), remaining))]))
            guard n > 0 else { throw StoreError("/\(path): \(store.path(of: digest)) is shorter than the \(entry.size) bytes its tree says") }
            try tar.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            remaining -= UInt64(n)
        }
    }

    /// Deletes `path` of the layers below: `.wh.NAME` beside where NAME was.
    func whiteout(_ path: String) throws {
        let (parent, name) = Beneath.split(path)
        try marker(parent, OCI.whiteoutPrefix + name)
    }

    /// Hides the lower layers' entries in the directory `path` (written just after the directory).
    func opaque(_ path: String) throws {
        try marker(path, OCI.opaqueMarker)
    }

    /// Markers are empty root-owned files with time 0, so they add nothing that varies.
    private func marker(_ directory: String, _ name: String) throws {
        try tar.begin(ArchiveMember(path: directory.isEmpty ? name : directory + "/" + name, kind: .regular, mode: 0))
    }

    /// Ends the layer; returns the digest of the uncompressed tar (the `diff_id`).
    func finish() throws -> Digest {
        try tar.finish()
        try gzip.finish()
        return diffHasher.take()!.finalize()
    }
}
