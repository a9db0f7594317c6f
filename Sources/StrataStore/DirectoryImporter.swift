import Dispatch
import Synchronization
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct IngestStatistics: Sendable {
    public var files = 0
    public var directories = 0
    public var otherEntries = 0
    public var bytes: UInt64 = 0
    /// Files whose digest came from the stat cache, not from reading them.
    public var cachedFiles = 0

    public init() {}
}

/// Builds a tree from a directory on disk. One thread walks the tree while workers on every core hash
/// and store the files it finds, so the walk's system calls overlap the hashing.
///
/// The directory may belong to someone else and change while it is read (a live VLFS's private
/// layer): the walk goes by directory descriptors and never follows a symlink or crosses a mount, and
/// a file is read only once it is known to be the regular file that was listed, so swapping a
/// directory for a symlink or a file for a device node cannot make it read anything outside the tree.
public enum DirectoryImporter {
    public static func importTree(at path: String, into batch: ObjectStore.Batch, statCache: inout StatCache?) throws
        -> (root: TreeEntry, statistics: IngestStatistics)
    {
        let root = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        return try importTree(in: root, into: batch, statCache: &statCache)
    }

    /// Builds a tree from the directory held open (for reading) as `root`.
    public static func importTree(in root: borrowing FileDescriptor, into batch: ObjectStore.Batch, statCache: inout StatCache?) throws
        -> (root: TreeEntry, statistics: IngestStatistics)
    {
        let builder = TreeBuilder(source: root.path)
        let top = FileAt.descriptor(root)
        try builder.insert(try entry(for: try top.stat(), name: ".", at: top), at: [])

        let queue = HashQueue(batch: batch, root: root.raw, rootPath: root.path)
        var walk = Walk(builder: builder, statCache: statCache, queue: queue)
        let walked = Result { try walk.directory(root, relative: "", components: []) }
        let digests = queue.finish()
        try walked.get()

        for (index, file) in walk.pending.enumerated() {
            let digest = try digests[index]!.get()
            file.node.entry.digest = digest
            statCache?.record(file.stat, digest: digest)
        }
        return (try builder.store(into: batch), walk.statistics)
    }

    /// Files waiting to be hashed, consumed by one worker per core (twice over, to overlap I/O).
    final class HashQueue: @unchecked Sendable {
        // The semaphore counts queued files plus, at the end, one wake-up per worker to let it exit.
        private let state = Mutex<(files: [(relative: String, stat: stat)], next: Int)>(([], 0))
        private let available = DispatchSemaphore(value: 0)
        private let results = Mutex<[Int: Result<Digest, Error>]>([:])
        private let group = DispatchGroup()
        private let workers = max(ProcessInfo.processInfo.activeProcessorCount, 1) * 2

        let batch: ObjectStore.Batch
        /// The walked directory, held open by `importTree` until `finish()` returns.
        private let root: Int32
        private let rootPath: String

        init(batch: ObjectStore.Batch, root: Int32, rootPath: String) {
            self.batch = batch
            self.root = root
            self.rootPath = rootPath
            for _ in 0..<workers {
                DispatchQueue.global().async(group: group) { [self] in work() }
            }
        }

        /// Queues the regular file at `relative` beneath the root, as listed with `stat`.
        func add(_ relative: String, _ stat: stat) {
            state.withLock { $0.files.append((relative, stat)) }
            available.signal()
        }

        private func work() {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var local: [Int: Result<Digest, Error>] = [:]
            while true {
                available.wait()
                guard let (index, file) = state.withLock({ s -> (Int, (relative: String, stat: stat))? in
                    guard s.next < s.files.count else { return nil }
                    s.next += 1
                    return (s.next - 1, s.files[s.next - 1])
                }) else { break }
                local[index] = Result {
                    let fd = try Beneath.openListedFile(root, file.relative, listed: file.stat, path: rootPath + "/" + file.relative)
                    return try batch.putFile(fd, buffer: buffer).0
                }
            }
            results.withLock { $0.merge(local) { a, _ in a } }
        }

        /// Waits for every queued file and returns the results by queue position.
        func finish() -> [Int: Result<Digest, Error>] {
            for _ in 0..<workers { available.signal() }
            group.wait()
            return results.withLock { $0 }
        }
    }

    private struct Walk {
        let builder: TreeBuilder
        let statCache: StatCache?
        let queue: HashQueue
        /// Files handed to the queue, in queue order.
        var pending: [(node: TreeBuilder.Node, stat: stat)] = []
        var statistics = IngestStatistics()
        var inodes: [TreeBuilder.InodeKey: Int] = [:]

        /// Adds the contents of `directory`, found at `relative` beneath the root.
        mutating func directory(_ directory: borrowing FileDescriptor, relative: String, components: [String]) throws {
            for listed in try directory.entries() {
                guard let name = listed.text else {
                    throw StoreError("\(directory.path): the name '\(listed.displayName)' is not valid UTF-8, which Strata manifests require")
                }
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                let childComponents = components + [name]
                var st = try FileAt.name(name, in: directory).stat()
                guard (st.st_mode & S_IFMT) == S_IFDIR else {
                    try file(FileAt.name(name, in: directory), st, relative: childRelative, components: childComponents)
                    continue
                }
                let child = try directory.open(beneath: name, O_RDONLY | O_DIRECTORY)
                // What is read is what was opened, whatever the name pointed to when it was listed.
                st = try child.stat()
                try builder.insert(try DirectoryImporter.entry(for: st, name: name, at: .descriptor(child)), at: childComponents)
                statistics.directories += 1
                try self.directory(child, relative: childRelative, components: childComponents)
            }
        }

        /// Adds a non-directory.
        private mutating func file(_ file: FileAt, _ st: stat, relative: String, components: [String]) throws {
            let entry = try DirectoryImporter.entry(for: st, name: components.last!, at: file)
            let node = try builder.insert(entry, at: components)
            if st.st_nlink > 1 {
                builder.setLinkKey(node, inode: TreeBuilder.InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)), keys: &inodes)
            }
            guard entry.kind == .regular else {
                statistics.otherEntries += 1
                return
            }
            statistics.files += 1
            statistics.bytes += UInt64(st.st_size)
            if let digest = statCache?.digest(for: st), queue.batch.has(digest) {
                node.entry.digest = digest
                statistics.cachedFiles += 1
            } else {
                pending.append((node, st))
                queue.add(relative, st)
            }
        }
    }

    /// The entry for a file on disk, without its content digest.
    public static func entry(for st: stat, name: String, path: String) throws -> TreeEntry {
        try entry(for: st, name: name, at: FileAt(path: path))
    }

    /// The entry of a file held open (O_PATH with O_NOFOLLOW: a symlink is the link itself).
    public static func entry(for st: stat, name: String, descriptor: Int32) throws -> TreeEntry {
        try entry(for: st, name: name, at: FileAt(descriptor: descriptor, path: name))
    }

    static func entry(for st: stat, name: String, at file: FileAt) throws -> TreeEntry {
        guard let kind = EntryKind(fileTypeBits: st.st_mode) else { throw StoreError("\(file.path): unknown file type") }
        var entry = TreeEntry(name: name, kind: kind, mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, mtime: Timestamp(st.st_mtim),
                              xattrs: try ExtendedAttributes.list(file.attributes))
        switch kind {
        case .regular: entry.size = UInt64(st.st_size)
        case .symlink: entry.target = try file.readLink(size: Int(st.st_size))
        case .characterDevice, .blockDevice: entry.device = UInt64(st.st_rdev)
        default: break
        }
        return entry
    }
}

extension TreeBuilder {
    struct InodeKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    func setLinkKey(_ node: Node, inode: InodeKey, keys: inout [InodeKey: Int]) {
        if let key = keys[inode] {
            node.linkKey = key
        } else {
            let key = keys.count + 1
            keys[inode] = key
            node.linkKey = key
        }
    }
}
