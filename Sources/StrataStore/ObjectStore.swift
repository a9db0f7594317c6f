import Foundation
import Synchronization
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The content-addressed store: immutable objects named by their SHA-256, as loose files under
/// `objects/sha256/ab/cdef…`. Blobs are file contents stored raw, so the daemon can serve them
/// straight from the file; manifests are objects too.
///
/// Writes go through a `Batch`: each object is written to a staging directory under `tmp/`, and
/// `commit()` makes the whole batch durable with one `syncfs` before renaming the objects into place
/// and fsyncing the fan-out directories. An object therefore appears under its name only once its
/// bytes are on disk, at one sync per batch instead of one per object; a process killed mid-batch
/// leaves only a staging directory, which the next `open` of the store removes.
public final class ObjectStore: Sendable {
    public let root: String
    public let objectsPath: String
    let temporaryPath: String
    /// Where manifests missing from this store come from (a lazily fetched mirror), if anywhere.
    let missingManifests: (any ManifestSource)?
    /// `objectsPath`, held open so that objects open by name beneath it (`openObject`).
    private let objects: DirectoryDescriptor

    /// Opens the store at `root` (the directory holding `objects/`), creating its layout if asked.
    public init(root: String, create: Bool = false) throws {
        self.root = root
        objectsPath = root + "/objects/sha256"
        temporaryPath = root + "/tmp"
        missingManifests = nil
        if create {
            try makeDirectories(objectsPath)
            try makeDirectories(temporaryPath)
        }
        let descriptor = Glibc.open(objectsPath, Beneath.pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw StoreError("\(root): not an object store (no objects/sha256 directory)")
        }
        objects = DirectoryDescriptor(descriptor)
        removeAbandonedStaging()
    }

    private init(sharing store: ObjectStore, missingManifests: any ManifestSource) {
        root = store.root
        objectsPath = store.objectsPath
        temporaryPath = store.temporaryPath
        self.missingManifests = missingManifests
        objects = store.objects
    }

    /// This store, reading the manifests it lacks from `source` (which verifies and keeps them): the
    /// view of a mirror whose layers are fetched as they are listed.
    public func fetchingMissingManifests(from source: any ManifestSource) -> ObjectStore {
        ObjectStore(sharing: self, missingManifests: source)
    }

    public func path(of digest: Digest) -> String {
        objectsPath + "/" + digest.withObjectName { String(cString: $0) }
    }

    /// Opens an object's file with `open(2)` flags, or returns -1 with errno set; no path is built.
    public func openObject(_ digest: Digest, flags: Int32) -> Int32 {
        digest.withObjectName { openat(objects.descriptor, $0, flags | O_CLOEXEC) }
    }

    public func has(_ digest: Digest) -> Bool {
        access(path(of: digest), F_OK) == 0
    }

    /// Reads a whole object without verifying it (local serving trusts the store).
    public func read(_ digest: Digest) throws -> [UInt8] {
        guard let bytes = try readIfPresent(digest) else { throw missing(digest) }
        return bytes
    }

    /// A whole object, or nil when the store lacks it.
    func readIfPresent(_ digest: Digest) throws -> [UInt8]? {
        do {
            return try FileDescriptor.open(path(of: digest), O_RDONLY).readAll()
        } catch let error as SystemError where error.errno == ENOENT {
            return nil
        }
    }

    func missing(_ digest: Digest) -> StoreError { StoreError("object \(digest) is missing from \(root)") }

    /// Reads an object and checks its digest, for data that crosses a trust boundary.
    public func readVerified(_ digest: Digest) throws -> [UInt8] {
        let bytes = try read(digest)
        guard SHA256.hash(bytes) == digest else { throw StoreError("object \(digest) in \(root) is corrupt: its content hashes differently") }
        return bytes
    }

    public func open(_ digest: Digest) throws -> FileDescriptor {
        try FileDescriptor.open(path(of: digest), O_RDONLY)
    }

    /// Every object present, by walking the fan-out directories.
    public func allObjects() throws -> [Digest] {
        var result: [Digest] = []
        for fan in try FileManager.default.contentsOfDirectory(atPath: objectsPath) where fan.utf8.count == 2 {
            for rest in try FileManager.default.contentsOfDirectory(atPath: objectsPath + "/" + fan) {
                if let digest = Digest(fan + rest) { result.append(digest) }
            }
        }
        return result
    }

    /// Stores one object durably on its own (a batch of one).
    @discardableResult
    public func put(_ bytes: [UInt8]) throws -> Digest {
        let batch = try Batch(store: self)
        let digest = try batch.put(bytes)
        try batch.commit()
        return digest
    }

    public func beginBatch() throws -> Batch { try Batch(store: self) }

    /// Removes staging directories left by processes that no longer exist.
    private func removeAbandonedStaging() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: temporaryPath) else { return }
        for name in names where name.hasPrefix("stage-") {
            let fields = name.split(separator: "-")
            guard fields.count >= 3, let pid = Int32(fields[1]) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                try? removeTree(temporaryPath + "/" + name)
            }
        }
    }

    /// Removes an object (garbage collection and repair only: objects are otherwise never modified).
    public func remove(_ digest: Digest) throws {
        _ = try sys("unlink", path(of: digest)) { unlink(path(of: digest)) }
    }

    /// A set of objects written together and made durable by one `commit()`.
    /// Safe to use from several threads at once; objects already in the store are not written again.
    public final class Batch: Sendable {
        public let store: ObjectStore
        let stagingPath: String
        private let staged = Mutex<Set<Digest>>([])
        private let committed = Atomic<Bool>(false)

        init(store: ObjectStore) throws {
            self.store = store
            stagingPath = "\(store.temporaryPath)/stage-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            _ = try sys("mkdir", stagingPath) { mkdir(stagingPath, 0o700) }
        }

        deinit {
            if !committed.load(ordering: .relaxed) { try? removeTree(stagingPath) }
        }

        public func has(_ digest: Digest) -> Bool {
            staged.withLock { $0.contains(digest) } || store.has(digest)
        }

        @discardableResult
        public func put(_ bytes: [UInt8]) throws -> Digest {
            try bytes.withUnsafeBytes { raw in
                let digest = SHA256.hash(raw)
                try stage(raw, as: digest)
                return digest
            }
        }

        /// Where a staged object waits for the commit: fanned out like the store, so that parallel
        /// writers rarely contend for one directory.
        private func stagingPath(of digest: Digest) -> (directory: String, file: String) {
            let hex = digest.hex
            let directory = "\(stagingPath)/\(hex.prefix(2))"
            return (directory, "\(directory)/\(hex.dropFirst(2))")
        }

        /// Writes bytes already hashed under their digest, unless the object exists or is staged already.
        private func stage(_ bytes: UnsafeRawBufferPointer, as digest: Digest) throws {
            if store.has(digest) || !staged.withLock({ $0.insert(digest).inserted }) { return }
            let (directory, file) = stagingPath(of: digest)
            do {
                let fd = try createStagingFile(file, directory: directory)
                try fd.write(bytes)
            } catch {
                staged.withLock { _ = $0.remove(digest) }
                throw error
            }
        }

        private func createStagingFile(_ file: String, directory: String) throws -> FileDescriptor {
            do {
                return try FileDescriptor.open(file, O_WRONLY | O_CREAT | O_EXCL, mode: 0o444)
            } catch let error as SystemError where error.errno == ENOENT {
                if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SystemError("mkdir", directory) }
                return try FileDescriptor.open(file, O_WRONLY | O_CREAT | O_EXCL, mode: 0o444)
            }
        }

        /// A fresh file in the staging directory for a streaming writer.
        public func temporaryFile() throws -> StagedFile {
            let path = "\(stagingPath)/tmp-\(UInt64.random(in: 0...UInt64.max))"
            return StagedFile(path: path, descriptor: try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o444))
        }

        /// Names a finished staged file by its digest, or drops it when the object exists already.
        public func adopt(_ file: consuming StagedFile, as digest: Digest) throws {
            try adopt(fileAt: file.path, as: digest)
        }

        /// Moves a finished file whose content hashes to `digest` into the batch (or drops it when the
        /// object exists already). The file must be on the store's filesystem: it is renamed, not copied.
        public func adopt(fileAt path: String, as digest: Digest) throws {
            if store.has(digest) || !staged.withLock({ $0.insert(digest).inserted }) {
                unlink(path)
                return
            }
            let (directory, final) = stagingPath(of: digest)
            if rename(path, final) != 0 {
                guard errno == ENOENT, mkdir(directory, 0o700) == 0 || errno == EEXIST else { throw SystemError("rename", final) }
                _ = try sys("rename", final) { rename(path, final) }
            }
        }

        /// Where an object staged in this batch waits for the commit (which renames it away), or nil
        /// when this batch has not staged it.
        public func stagedPath(of digest: Digest) -> String? {
            staged.withLock { $0.contains(digest) } ? stagingPath(of: digest).file : nil
        }

        /// Copies a file into the batch while hashing it, with a caller-provided buffer. A file that fits
        /// the buffer is read whole, hashed, and written only if it is new (one create, no rename); a
        /// larger one streams through a temporary file. Either way the bytes written are the bytes hashed.
        public func putFile(_ source: borrowing FileDescriptor, buffer: UnsafeMutableRawBufferPointer) throws -> (Digest, size: UInt64) {
            var filled = 0
            while filled < buffer.count {
                let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                if n == 0 {
                    let contents = UnsafeRawBufferPointer(rebasing: buffer[..<filled])
                    let digest = SHA256.hash(contents)
                    try stage(contents, as: digest)
                    return (digest, UInt64(filled))
                }
                filled += n
            }
            var prefix: Int? = filled
            return try putStream(buffer: buffer) { chunk in
                if let length = prefix {
                    prefix = nil
                    return length
                }
                return try source.read(into: chunk)
            }
        }

        /// Stores what `read` yields until it returns 0, hashing as it goes.
        public func putStream(buffer: UnsafeMutableRawBufferPointer, read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> (Digest, size: UInt64) {
            var hasher = SHA256()
            let temporary = try temporaryFile()
            var size: UInt64 = 0
            while true {
                let n = try read(buffer)
                if n == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
                hasher.update(chunk)
                try temporary.descriptor.write(chunk)
                size += UInt64(n)
            }
            let digest = hasher.finalize()
            try adopt(temporary, as: digest)
            return (digest, size)
        }

        /// Reads a tree manifest staged in this batch or already in the store.
        public func tree(_ digest: Digest) throws -> Tree {
            let staged = stagingPath(of: digest).file
            if let fd = try? FileDescriptor.open(staged, O_RDONLY) { return try Tree(decoding: try fd.readAll(), what: "tree \(digest)") }
            return try store.tree(digest)
        }

        /// Makes every staged object durable, then moves it into place.
        public func commit() throws {
            let digests = staged.withLock { Array($0) }
            if digests.count == 1 {
                // One object (a lazy fetch waiting on it): its own fsync, not the whole filesystem's.
                let file = try FileDescriptor.open(stagingPath(of: digests[0]).file, O_RDONLY)
                _ = try sys("fsync", stagingPath(of: digests[0]).file) { fsync(file.raw) }
            } else if !digests.isEmpty {
                let directory = try FileDescriptor.open(stagingPath, O_RDONLY | O_DIRECTORY)
                _ = try sys("syncfs", stagingPath) { syncfs(directory.raw) }
            }
            var touched = Set<String>()
            for digest in digests {
                let staging = stagingPath(of: digest).file
                let final = store.path(of: digest)
                let fan = (final as NSString).deletingLastPathComponent
                if rename(staging, final) != 0 {
                    guard errno == ENOENT else { throw SystemError("rename", final) }
                    try makeDirectories(fan)
                    _ = try sys("rename", final) { rename(staging, final) }
                }
                touched.insert(fan)
            }
            for fan in touched { try AtomicFile.syncDirectory(fan) }
            committed.store(true, ordering: .relaxed)
            try removeTree(stagingPath)
            staged.withLock { $0.removeAll() }
        }
    }
}

/// A file being written into a batch's staging directory.
public struct StagedFile: ~Copyable {
    public let path: String
    public let descriptor: FileDescriptor
}

/// Supplies manifests (trees, path lists) a store lacks, each checked against its digest before it is returned.
public protocol ManifestSource: Sendable {
    func manifest(_ digest: Digest) throws -> [UInt8]
}

/// A directory descriptor closed with its last user.
final class DirectoryDescriptor: Sendable {
    let descriptor: Int32

    init(_ descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }
}
