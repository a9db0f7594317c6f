import Foundation
import StrataStore

/// A file-level delta between two images, as in Mirage's delta deployment: the operations that turn a
/// checkout of the source image into one of the target, with the target's metadata for every entry
/// touched and the contents of the files it adds or changes (each once), and nothing else.
public struct ImageDelta: Sendable {
    public enum Operation: Sendable, Equatable {
        /// Remove the path and everything below it.
        case remove(String)
        /// Create an entry where nothing is (a directory empty: its contents follow).
        case create(String, TreeEntry)
        /// Replace a non-directory by another.
        case replace(String, TreeEntry)
        /// Set an existing entry's metadata (mode, owner, xattrs, times), last, since every change
        /// inside a directory touches its times.
        case setMetadata(String, TreeEntry)
    }

    public var source: Digest
    public var target: Digest
    /// The target's root entry: its tree digest is what the result must hash to.
    public var targetRoot: TreeEntry
    public var operations: [Operation]
    public var blobs: [Digest: [UInt8]]

    /// Computes the delta from one image to another, both in `store`, in time proportional to their difference.
    public static func make(from source: (digest: Digest, manifest: ImageManifest), to target: (digest: Digest, manifest: ImageManifest),
                            store: ObjectStore) throws -> ImageDelta {
        var removals: [String] = []
        var creations: [(String, TreeEntry)] = []
        var replacements: [(String, TreeEntry)] = []
        var metadata: [String: TreeEntry] = [:]
        let removed = { (path: String) in removals.contains { path.hasPrefix($0 + "/") } }
        try TreeDiff.compare(source.manifest.filesystem.digest, target.manifest.filesystem.digest, oldStore: store, newStore: store,
                             expandDirectories: true) { path, change in
            switch change {
            case .deleted:
                if !removed(path) { removals.append(path) }
            case .added(let entry):
                creations.append((path, entry))
            case .modified(let old, let new) where old.kind == .directory || new.kind == .directory:
                removals.append(path)
                creations.append((path, new))
                // TreeDiff does not descend into a directory that replaced a file: list its contents here.
                if new.kind == .directory { try store.walk(new.digest!, prefix: path) { creations.append(($0, $1)) } }
            case .modified(_, let new):
                replacements.append((path, new))
            case .metadata(_, let new):
                metadata[path] = new
            }
        }
        // Every directory above a change gets the target's metadata back once the change is made.
        var lookup = TreeLookup(store: store)
        for path in Set(removals + creations.map(\.0) + replacements.map(\.0)) {
            var parent = path
            while let slash = parent.lastIndex(of: "/") {
                parent = String(parent[..<slash])
                if metadata[parent] == nil, let entry = try lookup.entry(at: parent, under: target.manifest.filesystem) { metadata[parent] = entry }
            }
        }
        var blobs: [Digest: [UInt8]] = [:]
        for (_, entry) in creations + replacements where entry.kind == .regular && blobs[entry.digest!] == nil {
            blobs[entry.digest!] = try store.read(entry.digest!)
        }
        let operations = removals.map(Operation.remove) + creations.map(Operation.create) + replacements.map(Operation.replace)
            + metadata.keys.sorted().map { Operation.setMetadata($0, metadata[$0]!) }
        return ImageDelta(source: source.digest, target: target.digest, targetRoot: target.manifest.filesystem, operations: operations, blobs: blobs)
    }
}

// MARK: Applying

extension ImageDelta {
    /// Applies the delta to `directory`, a checkout of the source image, then checks that the result
    /// hashes to the target image's tree. File contents pass through `store` (verified by their
    /// digests as they go in). A directory that is plainly not a checkout of the source (a path to
    /// change missing, a path to create present) is refused before anything changes.
    public func apply(to directory: String, store: ObjectStore) throws {
        try checkPreconditions(directory)
        let batch = try store.beginBatch()
        for (digest, bytes) in blobs {
            guard try batch.put(bytes) == digest else { throw CatalogError("delta: the contents given for \(digest) hash differently") }
        }
        try batch.commit()
        var linkLeaders: [UInt32: String] = [:]
        for operation in operations {
            switch operation {
            case .remove(let path):
                try removeTree(directory + "/" + path)
            case .create(let path, let entry), .replace(let path, let entry):
                let full = directory + "/" + path
                if case .replace = operation { try removeTree(full) }
                if entry.kind != .directory && entry.linkGroup != 0, let leader = linkLeaders[entry.linkGroup] {
                    guard link(leader, full) == 0 else { throw SystemError("link", full) }
                    continue
                }
                try Checkout.place(entry, from: store, at: full)
                if entry.kind != .directory && entry.linkGroup != 0 { linkLeaders[entry.linkGroup] = full }
            case .setMetadata(let path, let entry):
                try Checkout.applyMetadata(entry, at: directory + "/" + path)
            }
        }
        try Checkout.applyMetadata(targetRoot, at: directory)
        try verify(directory, store: store)
    }

    private func checkPreconditions(_ directory: String) throws {
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw CatalogError("\(directory): not a directory") }
        var created = Set<String>()
        func exists(_ path: String) -> Bool { lstat(directory + "/" + path, &st) == 0 }
        func problem(_ text: String) -> CatalogError {
            CatalogError("\(directory) is not a checkout of image \(source): \(text); nothing was changed")
        }
        for operation in operations {
            switch operation {
            case .remove(let path):
                guard exists(path) else { throw problem("/\(path) is missing") }
            case .create(let path, _):
                let parent = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? ""
                let parentCreated = created.contains(parent)
                created.insert(path)
                if parentCreated || operations.contains(.remove(path)) { continue }
                guard !exists(path) else { throw problem("/\(path) exists already") }
            case .replace(let path, _):
                guard exists(path) else { throw problem("/\(path) is missing") }
            case .setMetadata(let path, _):
                guard created.contains(path) || exists(path) else { throw problem("/\(path) is missing") }
            }
        }
    }

    /// Hashes the result as a check-in would (without keeping anything) and compares it with the target.
    private func verify(_ directory: String, store: ObjectStore) throws {
        let batch = try store.beginBatch()  // never committed: its staging goes away with it
        var noCache: StatCache? = nil
        let root = try DirectoryImporter.importTree(at: directory, into: batch, statCache: &noCache).root
        guard root.digest == targetRoot.digest, root.sameMetadata(ignoringDigestOf: targetRoot) else {
            throw CatalogError("\(directory) does not match image \(target) after applying the delta: its tree is \(root.digest!), the image's is \(targetRoot.digest!)")
        }
    }
}
