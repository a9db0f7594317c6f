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
    /// change missing, a path to create present) is refused before anything changes, and so is a delta
    /// that would act outside it: a path with `..`, or beneath a symlink (already there or made by the
    /// delta). Every change is made relative to its parent directory reached without following
    /// symlinks, so a checkout that changes meanwhile cannot redirect one either.
    public func apply(to directory: String, store: ObjectStore) throws {
        let checkout: Checkout
        do {
            checkout = try Checkout(into: directory, from: store)
        } catch {
            throw CatalogError("\(directory): cannot apply a delta to it: \(error)")
        }
        let operations = try operations.map { operation in
            do {
                return operation.at(try ImageDelta.checked(operation.path))
            } catch {
                throw CatalogError("\(directory): \(error); nothing was changed")
            }
        }
        try checkPreconditions(operations, in: checkout.root)
        let batch = try store.beginBatch()
        for (digest, bytes) in blobs {
            guard try batch.put(bytes) == digest else { throw CatalogError("delta: the contents given for \(digest) hash differently") }
        }
        try batch.commit()
        for operation in operations {
            do {
                switch operation {
                case .remove(let path):
                    try removeTree(in: checkout.root, path)
                case .create(let path, let entry):
                    try checkout.place(entry, at: path)
                case .replace(let path, let entry):
                    try removeTree(in: checkout.root, path)
                    try checkout.place(entry, at: path)
                case .setMetadata(let path, let entry):
                    try checkout.applyMetadata(entry, at: path)
                }
            } catch {
                throw CatalogError("\(directory): applying the delta's entry /\(operation.path) failed, part-way through the delta: \(error)")
            }
        }
        try checkout.applyMetadata(targetRoot, at: "")
        try verify(checkout.root, store: store)
    }

    /// A delta's path, canonical: relative, no `.` or `..`, not the root itself.
    static func checked(_ path: String) throws -> String {
        guard !path.hasPrefix("/") else { throw CatalogError("delta entry '\(path)' is absolute; a delta names paths relative to the checkout") }
        let normalized = try Beneath.normalize(path, what: "delta entry")
        guard !normalized.isEmpty else { throw CatalogError("delta entry '\(path)' names the checkout's root, which only the delta's root entry may change") }
        return normalized
    }

    private func checkPreconditions(_ operations: [Operation], in root: borrowing FileDescriptor) throws {
        /// What the delta itself creates, by path.
        var created: [String: EntryKind] = [:]
        func problem(_ text: String) -> CatalogError {
            CatalogError("\(root.path) is not a checkout of image \(source): \(text); nothing was changed")
        }
        /// Whether the checkout has `path`, reached beneath it without following a symlink on the way.
        func exists(_ path: String) throws -> Bool {
            let fd = Beneath.open(root.raw, path, flags: Beneath.pathOnly | O_NOFOLLOW)
            if fd >= 0 { close(fd) }
            guard fd >= 0 || fd == -ENOENT else {
                throw problem("/\(path) cannot be reached without leaving it or going through a symlink (\(String(cString: strerror(-fd))))")
            }
            return fd >= 0
        }
        for operation in operations {
            switch operation {
            case .remove(let path):
                guard try exists(path) else { throw problem("/\(path) is missing") }
            case .create(let path, let entry):
                let parent = Beneath.split(path).parent
                created[path] = entry.kind
                if let kind = created[parent] {
                    guard kind == .directory else { throw problem("/\(path) lies beneath /\(parent), which the delta makes a \(kind)") }
                    continue
                }
                if operations.contains(.remove(path)) { continue }
                guard try !exists(path) else { throw problem("/\(path) exists already") }
            case .replace(let path, _):
                guard try exists(path) else { throw problem("/\(path) is missing") }
            case .setMetadata(let path, _):
                guard try created[path] != nil || exists(path) else { throw problem("/\(path) is missing") }
            }
        }
    }

    /// Hashes the result as a check-in would (without keeping anything) and compares it with the target.
    private func verify(_ directory: borrowing FileDescriptor, store: ObjectStore) throws {
        let batch = try store.beginBatch()  // never committed: its staging goes away with it
        var noCache: StatCache? = nil
        let root = try DirectoryImporter.importTree(in: directory, into: batch, statCache: &noCache).root
        guard root.digest == targetRoot.digest, root.sameMetadata(ignoringDigestOf: targetRoot) else {
            throw CatalogError("\(directory.path) does not match image \(target) after applying the delta: its tree is \(root.digest!), the image's is \(targetRoot.digest!)")
        }
    }
}

extension ImageDelta.Operation {
    /// The path the operation acts on.
    var path: String {
        switch self {
        case .remove(let path), .create(let path, _), .replace(let path, _), .setMetadata(let path, _): path
        }
    }

    /// The same operation on another path.
    func at(_ path: String) -> Self {
        switch self {
        case .remove: .remove(path)
        case .create(_, let entry): .create(path, entry)
        case .replace(_, let entry): .replace(path, entry)
        case .setMetadata(_, let entry): .setMetadata(path, entry)
        }
    }
}
