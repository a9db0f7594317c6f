#if canImport(Glibc)
import Glibc
#endif

/// Remembers the digest of every file ingested from disk, keyed on what changes when the file does
/// (device, inode, size, mtime, ctime), as git's index does: re-ingesting an unchanged tree then
/// costs a `stat` per file instead of a read and a hash.
public struct StatCache: Sendable {
    struct Key: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    struct Record: Hashable {
        var size: UInt64
        var mtime: Timestamp
        var ctime: Timestamp
        var digest: Digest
    }

    private var records: [Key: Record] = [:]
    public let path: String

    /// An empty cache kept in memory only (`save` is not for it).
    public init() { path = "" }

    /// Loads the cache at `path`; a missing or unreadable cache is an empty one (it is only a cache).
    public init(path: String) {
        self.path = path
        guard let fd = try? FileDescriptor.open(path, O_RDONLY), let bytes = try? fd.readAll() else { return }
        records = (try? bytes.withUnsafeBytes { raw -> [Key: Record] in
            var reader = BinaryReader(raw, what: path)
            var result: [Key: Record] = [:]
            let count = Int(try reader.varint())
            result.reserveCapacity(count)
            for _ in 0..<count {
                let key = Key(device: try reader.varint(), inode: try reader.varint())
                result[key] = Record(size: try reader.varint(),
                                     mtime: Timestamp(seconds: try reader.signed(), nanoseconds: try reader.uint32()),
                                     ctime: Timestamp(seconds: try reader.signed(), nanoseconds: try reader.uint32()),
                                     digest: try reader.digest())
            }
            return result
        }) ?? [:]
    }

    public var count: Int { records.count }

    func digest(for st: stat) -> Digest? {
        guard let record = records[Key(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))],
              record.size == UInt64(st.st_size), record.mtime == Timestamp(st.st_mtim), record.ctime == Timestamp(st.st_ctim)
        else { return nil }
        return record.digest
    }

    mutating func record(_ st: stat, digest: Digest) {
        records[Key(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))] =
            Record(size: UInt64(st.st_size), mtime: Timestamp(st.st_mtim), ctime: Timestamp(st.st_ctim), digest: digest)
    }

    public func save() throws {
        var writer = BinaryWriter()
        writer.bytes.reserveCapacity(records.count * 64)
        writer.varint(records.count)
        for (key, record) in records {
            writer.varint(key.device)
            writer.varint(key.inode)
            writer.varint(record.size)
            writer.signed(record.mtime.seconds)
            writer.varint(record.mtime.nanoseconds)
            writer.signed(record.ctime.seconds)
            writer.varint(record.ctime.nanoseconds)
            writer.digest(record.digest)
        }
        try AtomicFile.write(writer.bytes, to: path, mode: 0o600)
    }
}
