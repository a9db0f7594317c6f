import Foundation
import StrataStore

/// A machine's root filesystem read into a scratch store as one tree: a directory (a mounted disk
/// image is one) walked by directory descriptors without following a symlink or crossing a mount, or a
/// tarball read by libarchive with every path checked. Everything after reads the stored tree, never
/// the source, so a hostile source cannot lead a read outside itself, and a file is read only up to
/// the size its caller allows.
public struct MachineTree {
    public let source: String
    public let store: ObjectStore
    public let root: TreeEntry
    private var lookup: TreeLookup

    /// Reads `source` into a store at `scratch` (created).
    public init(reading source: String, scratch: String) throws {
        self.source = source
        store = try ObjectStore(root: scratch, create: true)
        let batch = try store.beginBatch()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { throw StoreError("\(source): no such file or directory") }
        if isDirectory.boolValue {
            var noCache: StatCache? = nil
            root = try DirectoryImporter.importTree(at: source, into: batch, statCache: &noCache).root
        } else {
            root = try ArchiveImporter.importTar(at: source, into: batch).root
        }
        try batch.commit()
        lookup = TreeLookup(store: store)
    }

    /// The entry at `path` (relative), symlinks not followed.
    public mutating func entry(_ path: String) throws -> TreeEntry? { try lookup.entry(at: path, under: root) }

    /// The bytes of the regular file at `path` (relative), following symlinks inside the tree as the
    /// machine would (`etc/os-release` → `../usr/lib/os-release`); nil if there is none. Refuses a
    /// file over `limit` bytes and more than 16 links in a row, naming the path.
    public mutating func file(_ path: String, limit: Int) throws -> [UInt8]? {
        var components = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var links = 0
        while !components.isEmpty {
            let name = components.removeFirst()
            if name == "." || name.isEmpty { continue }
            if name == ".." { _ = resolved.popLast(); continue }
            guard let entry = try lookup.entry(at: (resolved + [name]).joined(separator: "/"), under: root) else { return nil }
            if entry.kind == .symlink, let target = entry.target {
                links += 1
                if links > 16 { throw StoreError("\(source): /\(path): more than 16 symbolic links in a row") }
                if target.hasPrefix("/") { resolved = [] }
                components = target.split(separator: "/").map(String.init) + components
                continue
            }
            resolved.append(name)
            if components.isEmpty {
                guard entry.kind == .regular, let digest = entry.digest else { return nil }
                guard entry.size <= UInt64(limit) else { throw StoreError("\(source): /\(path) is \(entry.size) bytes, more than the \(limit) read") }
                return try store.read(digest)
            }
        }
        return nil
    }
}
