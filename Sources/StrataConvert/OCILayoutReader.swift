import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// An OCI image layout directory opened for reading, as untrusted input: every file is reached beneath
/// the layout's descriptor without following links (`Beneath`), opened only once seen to be a regular
/// file, read no further than a limit, and a blob is used only once it hashes to its descriptor's
/// digest and has its size.
final class OCILayoutReader {
    /// The layout's name in error messages (the directory, or the archive it came from).
    let name: String
    let index: OCI.Index
    private let blobs: FileDescriptor
    private let limits: OCIImport.Limits

    init(directory: String, name: String, limits: OCIImport.Limits) throws {
        self.name = name
        self.limits = limits
        let root = try FileDescriptor.directory(directory)
        let layout = try OCI.decode(OCI.LayoutFile.self, from: try Self.read(root.raw, "oci-layout", limit: limits.documentBytes, in: name),
                                    what: "\(name): oci-layout")
        guard layout.imageLayoutVersion.hasPrefix("1.") else { throw StoreError("\(name): image layout version \(layout.imageLayoutVersion) is not 1.x") }
        index = try OCI.decode(OCI.Index.self, from: try Self.read(root.raw, "index.json", limit: limits.documentBytes, in: name), what: "\(name): index.json")
        blobs = try root.open(beneath: "blobs/sha256", O_DIRECTORY | Beneath.pathOnly)
    }

    /// A regular file beneath `directory`, whole, refused when larger than `limit`.
    private static func read(_ directory: Int32, _ relative: String, limit: UInt64, in name: String) throws -> [UInt8] {
        guard let (fd, status) = try Beneath.openChecked(directory, relative, path: "\(name)/\(relative)", accept: { ($0.st_mode & S_IFMT) == S_IFREG }) else {
            throw StoreError("\(name): \(relative) is not a regular file")
        }
        let file = FileDescriptor(raw: fd, path: "\(name)/\(relative)")
        guard UInt64(status.st_size) <= limit else { throw StoreError("\(name): \(relative) has \(status.st_size) bytes, more than the \(limit) allowed") }
        return try file.readAll(limit: Int(limit))
    }

    /// A blob opened for reading from its start, checked against `descriptor` first.
    func open(_ descriptor: OCI.Descriptor, what: String) throws -> FileDescriptor {
        let digest = try OCI.digest(of: descriptor, in: "\(name): \(what)")
        guard descriptor.size >= 0, UInt64(descriptor.size) <= limits.blobBytes else {
            throw StoreError("\(name): \(what) claims \(descriptor.size) bytes, more than the \(limits.blobBytes) allowed")
        }
        let path = "\(name): blobs/sha256/\(digest.hex) (\(what))"
        guard let (fd, status) = try Beneath.openChecked(blobs.raw, digest.hex, path: path, accept: { ($0.st_mode & S_IFMT) == S_IFREG }) else {
            throw StoreError("\(path): not a regular file")
        }
        let file = FileDescriptor(raw: fd, path: path)
        guard status.st_size == descriptor.size else { throw StoreError("\(path): has \(status.st_size) bytes, its descriptor says \(descriptor.size)") }
        let found = try SHA256.hash(reading: file)
        guard found == digest else { throw StoreError("\(path): content hashes to \(found), not to its name") }
        _ = try sys("lseek", path) { lseek(file.raw, 0, SEEK_SET) }
        return file
    }

    /// A JSON document blob (a manifest, an index, a configuration), at most `documentBytes`.
    func document<T: Decodable>(_ descriptor: OCI.Descriptor, as type: T.Type, what: String) throws -> T {
        guard descriptor.size <= limits.documentBytes else {
            throw StoreError("\(name): \(what) claims \(descriptor.size) bytes, more than the \(limits.documentBytes) allowed for a document")
        }
        let file = try open(descriptor, what: what)
        return try OCI.decode(type, from: try file.readAll(limit: Int(limits.documentBytes)), what: "\(name): \(what) \(descriptor.digest)")
    }
}
