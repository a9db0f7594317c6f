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
public enum DirectoryImporter {
    public static func importTree(at path: String, into batch: ObjectStore.Batch, statCache: inout StatCache?) throws
        -> (root: TreeEntry, statistics: IngestStatistics)
    {
        let builder = TreeBuilder(source: path)
        let rootStat = try lstatOrThrow(path)
        guard (rootStat.st_mode & S_IFMT) == S_IFDIR else { throw StoreError("\(path): not a directory") }
        try builder.insert(try entry(for: rootStat, name: ".", path: path), at: [])

        let queue = HashQueue(batch: batch)
        var walk = Walk(builder: builder, statCache: statCache, queue: queue)
        let walked = Result { try walk.directory(path, components: []) }
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
        private let state = Mutex<(paths: [String], next: Int)>(([], 0))
        private let available = DispatchSemaphore(value: 0)
        private let results = Mutex<[Int: Result<Digest, Error>]>([:])
        private let group = DispatchGroup()
        private let workers = max(ProcessInfo.processInfo.activeProcessorCount, 1) * 2

        let batch: ObjectStore.Batch

        init(batch: ObjectStore.Batch) {
            self.batch = batch
            for _ in 0..<workers {
                DispatchQueue.global().async(group: group) { [self] in work() }
            }
        }

        func add(_ path: String) {
            state.withLock { $0.paths.append(path) }
            available.signal()
        }

        private func work() {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            var local: [Int: Result<Digest, Error>] = [:]
            while true {
                available.wait()
                guard let (index, path) = state.withLock({ s -> (Int, String)? in
                    guard s.next < s.paths.count else { return nil }
                    s.next += 1
                    return (s.next - 1, s.paths[s.next - 1])
                }) else { break }
                local[index] = Result {
                    let fd = try FileDescriptor.open(path, O_RDONLY | O_NOFOLLOW)
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

        mutating func directory(_ path: String, components: [String]) throws {
            guard let handle = opendir(path) else { throw SystemError("opendir", path) }
            defer { closedir(handle) }
            var children: [(name: String, path: String)] = []
            while true {
                errno = 0
                guard let dirent = readdir(handle) else {
                    if errno != 0 { throw SystemError("readdir", path) }
                    break
                }
                let name = try withUnsafeBytes(of: dirent.pointee.d_name) { raw -> String? in
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[..<(raw.firstIndex(of: 0) ?? raw.count)])
                    if bytes.count == 1 && bytes[0] == UInt8(ascii: ".") { return nil }
                    if bytes.count == 2 && bytes[0] == UInt8(ascii: ".") && bytes[1] == UInt8(ascii: ".") { return nil }
                    guard let name = String(validating: bytes, as: UTF8.self) else {
                        throw StoreError("\(path): an entry's name is not valid UTF-8, which Strata manifests require")
                    }
                    return name
                }
                if let name { children.append((name, path + "/" + name)) }
            }
            for child in children {
                let st = try lstatOrThrow(child.path)
                let entry = try DirectoryImporter.entry(for: st, name: child.name, path: child.path)
                let childComponents = components + [child.name]
                let node = try builder.insert(entry, at: childComponents)
                if entry.kind != .directory && st.st_nlink > 1 {
                    builder.setLinkKey(node, inode: TreeBuilder.InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)), keys: &inodes)
                }
                switch entry.kind {
                case .directory:
                    statistics.directories += 1
                    try directory(child.path, components: childComponents)
                case .regular:
                    statistics.files += 1
                    statistics.bytes += UInt64(st.st_size)
                    if let digest = statCache?.digest(for: st), queue.batch.has(digest) {
                        node.entry.digest = digest
                        statistics.cachedFiles += 1
                    } else {
                        pending.append((node, st))
                        queue.add(child.path)
                    }
                default:
                    statistics.otherEntries += 1
                }
            }
        }
    }

    static func lstatOrThrow(_ path: String) throws -> stat {
        var st = stat()
        _ = try sys("lstat", path) { lstat(path, &st) }
        return st
    }

    /// The entry for a file on disk, without its content digest.
    public static func entry(for st: stat, name: String, path: String) throws -> TreeEntry {
        try entry(for: st, name: name, attributes: .path(path)) { size in try readLink(path, size: size) }
    }

    /// The entry of a file held open (O_PATH with O_NOFOLLOW: a symlink is the link itself).
    public static func entry(for st: stat, name: String, descriptor: Int32) throws -> TreeEntry {
        try entry(for: st, name: name, attributes: .descriptor(descriptor)) { size in
            try readLink(size: size, what: name) { readlinkat(descriptor, "", $0, $1) }
        }
    }

    private static func entry(for st: stat, name: String, attributes: ExtendedAttributes.Target, target: (Int) throws -> String) throws -> TreeEntry {
        guard let kind = EntryKind(fileTypeBits: st.st_mode) else { throw StoreError("\(name): unknown file type") }
        var entry = TreeEntry(name: name, kind: kind, mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, mtime: Timestamp(st.st_mtim),
                              xattrs: try ExtendedAttributes.list(attributes))
        switch kind {
        case .regular: entry.size = UInt64(st.st_size)
        case .symlink: entry.target = try target(Int(st.st_size))
        case .characterDevice, .blockDevice: entry.device = UInt64(st.st_rdev)
        default: break
        }
        return entry
    }

    static func readLink(_ path: String, size: Int) throws -> String {
        try readLink(size: size, what: path) { readlink(path, $0, $1) }
    }

    private static func readLink(size: Int, what: String, _ call: (UnsafeMutablePointer<CChar>, Int) -> Int) throws -> String {
        var buffer = [CChar](repeating: 0, count: max(size, 255) + 1)
        let length = try sys("readlink", what) { buffer.withUnsafeMutableBufferPointer { call($0.baseAddress!, $0.count) } }
        guard let target = String(validating: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) else {
            throw StoreError("\(what): symlink target is not valid UTF-8")
        }
        return target
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
