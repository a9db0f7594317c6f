import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// One member of an archive, as Swift values.
public struct ArchiveMember: Sendable {
    public var path: String
    public var kind: EntryKind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var mtime: Timestamp
    public var size: UInt64
    public var symlinkTarget: String?
    public var hardlinkTarget: String?
    public var device: UInt64
    public var xattrs: [ExtendedAttribute]

    public init(path: String, kind: EntryKind, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, mtime: Timestamp = Timestamp(seconds: 0),
                size: UInt64 = 0, symlinkTarget: String? = nil, hardlinkTarget: String? = nil, device: UInt64 = 0, xattrs: [ExtendedAttribute] = []) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.size = size
        self.symlinkTarget = symlinkTarget
        self.hardlinkTarget = hardlinkTarget
        self.device = device
        self.xattrs = xattrs
    }
}

/// Sequential reader over libarchive: tar in any compression Debian uses (gzip, xz, zstd, bzip2,
/// none) and the `ar` container of a `.deb`. The corresponding C functions are `archive_read_*`.
public final class ArchiveReader {
    private let handle: OpaquePointer
    /// The archive's name in error messages.
    public let name: String
    /// Keeps in-memory input alive while libarchive reads it.
    private let memory: UnsafeMutableRawBufferPointer?
    /// The open file libarchive reads, closed with the reader.
    private let file: FileDescriptor?

    public init(path: String) throws {
        name = path
        memory = nil
        file = nil
        handle = archive_read_new()
        archive_read_support_filter_all(handle)
        archive_read_support_format_all(handle)
        // A throwing initializer of a fully initialized class still runs deinit, which frees the handle.
        if archive_read_open_filename(handle, path, 1 << 16) != ARCHIVE_OK { throw failure("cannot open") }
    }

    /// Reads from an open file (one reached beneath a directory descriptor), from where it stands.
    /// With `decompressOnly`, the file is one member, named `data`: its bytes uncompressed (what a
    /// compressed tar's members are cut from).
    public init(descriptor: consuming FileDescriptor, name: String, decompressOnly: Bool = false) throws {
        self.name = name
        memory = nil
        let raw = descriptor.raw
        file = .some(consume descriptor)
        handle = archive_read_new()
        archive_read_support_filter_all(handle)
        if decompressOnly { archive_read_support_format_raw(handle) } else { archive_read_support_format_all(handle) }
        if archive_read_open_fd(handle, raw, 1 << 16) != ARCHIVE_OK { throw failure("cannot open") }
    }

    public init(bytes: [UInt8], name: String) throws {
        self.name = name
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        memory = copy
        file = nil
        handle = archive_read_new()
        archive_read_support_filter_all(handle)
        archive_read_support_format_all(handle)
        if archive_read_open_memory(handle, copy.baseAddress, bytes.count) != ARCHIVE_OK { throw failure("cannot open") }
    }

    deinit {
        archive_read_free(handle)
        memory?.deallocate()
    }

    private func failure(_ what: String) -> StoreError {
        let detail = archive_error_string(handle).map { String(cString: $0) } ?? "unknown error"
        return StoreError("\(name): \(what): \(detail)")
    }

    /// The next member, or nil at the end of the archive.
    public func next() throws -> ArchiveMember? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(handle, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw failure("damaged or truncated archive") }
        guard let rawPath = archive_entry_pathname(entry) else { throw failure("member without a name") }
        let path = String(cString: rawPath)
        let hardlink = archive_entry_hardlink(entry).map { String(cString: $0) }
        let type = UInt32(archive_entry_filetype(entry))
        guard let kind = EntryKind(fileTypeBits: type) ?? (hardlink != nil ? .regular : nil) else {
            throw StoreError("\(name): member '\(path)' has an unsupported file type")
        }
        var xattrs: [ExtendedAttribute] = []
        if archive_entry_xattr_reset(entry) > 0 {
            var xattrName: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while archive_entry_xattr_next(entry, &xattrName, &value, &size) == ARCHIVE_OK, let xattrName {
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                xattrs.append(ExtendedAttribute(name: String(cString: xattrName), value: bytes))
            }
        }
        return ArchiveMember(
            path: path, kind: kind, mode: UInt32(archive_entry_perm(entry)) & 0o7777,
            uid: UInt32(truncatingIfNeeded: archive_entry_uid(entry)), gid: UInt32(truncatingIfNeeded: archive_entry_gid(entry)),
            mtime: Timestamp(seconds: Int64(archive_entry_mtime(entry)), nanoseconds: UInt32(truncatingIfNeeded: archive_entry_mtime_nsec(entry))),
            size: UInt64(max(archive_entry_size(entry), 0)),
            symlinkTarget: archive_entry_symlink(entry).map { String(cString: $0) },
            hardlinkTarget: hardlink,
            device: UInt64(archive_entry_rdev(entry)),
            xattrs: xattrs.sorted { $0.name < $1.name })
    }

    /// Reads the current member's data; 0 at its end.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = archive_read_data(handle, buffer.baseAddress, buffer.count)
        if n < 0 { throw failure("damaged or truncated archive") }
        return n
    }

    /// Reads the current member's data whole.
    public func readAll(sizeHint: UInt64) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Int(min(sizeHint, 1 << 30)))
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { break }
            out.append(contentsOf: chunk[..<n])
        }
        return out
    }
}
