import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Writes an OCI image layout directory: blobs named by their SHA-256 under `blobs/sha256/`, then
/// `oci-layout` and `index.json`. Every file is written under a temporary name, synced and renamed, and
/// `index.json` comes last, so a layout that has an index has every blob it names. Files are made
/// through descriptors of the layout's directories (`*at` calls), never by joined paths.
final class OCILayoutWriter {
    let path: String
    private let root: FileDescriptor
    private let blobs: FileDescriptor

    /// Creates the layout at `path`, which must not exist or be an empty directory.
    init(path: String) throws {
        self.path = path
        if mkdir(path, 0o755) != 0 {
            guard errno == EEXIST else { throw SystemError("mkdir", path) }
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path), names.isEmpty else {
                throw StoreError("\(path): exists and is not an empty directory (an OCI layout is written into a new directory)")
            }
        }
        root = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        for name in ["blobs", "blobs/sha256"] where mkdirat(root.raw, name, 0o755) != 0 && errno != EEXIST {
            throw SystemError("mkdir", path + "/" + name)
        }
        blobs = try root.open(beneath: "blobs/sha256", O_RDONLY | O_DIRECTORY)
    }

    /// Stores a small blob (a manifest, a configuration) and returns its digest and size.
    func blob(_ bytes: [UInt8]) throws -> (digest: Digest, size: Int64) {
        try blob { sink in try bytes.withUnsafeBytes { try sink($0) } }
    }

    /// Stores the bytes `produce` hands to its sink, hashing them as they pass.
    func blob(_ produce: (_ sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> (digest: Digest, size: Int64) {
        let temporary = ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let file = try HashingFile(FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644, relativeTo: blobs.raw))
        do {
            try produce { try file.write($0) }
            try file.descriptor.sync()
            let digest = file.finalize()
            _ = try sys("rename", blobs.path + "/" + digest.hex) { renameat(blobs.raw, temporary, blobs.raw, digest.hex) }
            return (digest, file.size)
        } catch {
            unlinkat(blobs.raw, temporary, 0)
            throw error
        }
    }

    /// Writes `oci-layout` and then `index.json`, and makes the whole layout durable.
    func finish(index: OCI.Index) throws {
        try blobs.sync()
        try write(OCI.encode(OCI.LayoutFile(imageLayoutVersion: OCI.layoutVersion)), as: "oci-layout")
        try write(OCI.encode(index), as: "index.json")
    }

    private func write(_ bytes: [UInt8], as name: String) throws {
        let temporary = ".\(name).tmp-\(getpid())"
        let file = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644, relativeTo: root.raw)
        try bytes.withUnsafeBytes { try file.write($0) }
        try file.sync()
        _ = try sys("rename", path + "/" + name) { renameat(root.raw, temporary, root.raw, name) }
        try root.sync()
    }
}

/// A file being written whose bytes are hashed and counted on the way.
final class HashingFile {
    let descriptor: FileDescriptor
    private var hasher: SHA256? = SHA256()
    private(set) var size: Int64 = 0

    init(_ descriptor: consuming FileDescriptor) { self.descriptor = descriptor }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher!.update(bytes)
        try descriptor.write(bytes)
        size += Int64(bytes.count)
    }

    /// The digest of everything written; called once, at the end.
    func finalize() -> Digest {
        hasher.take()!.finalize()
    }
}
