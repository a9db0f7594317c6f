import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Sequential writer over libarchive, the counterpart of `ArchiveReader`: members as Swift values in,
/// archive bytes out to a caller's sink, chunk by chunk. The corresponding C functions are
/// `archive_write_*`.
///
/// What it writes is reproducible: a member's header holds only what the caller gives (numeric owners,
/// no user or group names, no access or change times), and gzip output carries no time stamp nor file
/// name, so the same members give the same bytes.
public final class ArchiveWriter {
    public enum Format: Sendable {
        /// POSIX tar with pax extended headers where ustar cannot say it (long names, large numbers, xattrs, nanosecond times).
        case tar
        /// The bytes of one regular member and nothing else: a compressor for a stream.
        case raw
    }

    public enum Compression: Sendable { case none, gzip }

    private let handle: OpaquePointer
    /// The archive's name in error messages.
    public let name: String
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    /// What the sink threw inside libarchive's callback, rethrown to the caller.
    private var sinkError: (any Error)?
    private var closed = false

    public init(name: String, format: Format, compression: Compression, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        self.name = name
        self.sink = sink
        handle = archive_write_new()
        switch format {
        case .tar: archive_write_set_format_pax(handle)
        case .raw: archive_write_set_format_raw(handle)
        }
        switch compression {
        case .none:
            archive_write_add_filter_none(handle)
        case .gzip:
            archive_write_add_filter_gzip(handle)
            if archive_write_set_options(handle, "gzip:!timestamp") != ARCHIVE_OK { throw failure("cannot set gzip options") }
        }
        // A raw stream ends where its bytes do: padding the last block would put zeros after a gzip
        // stream, which readers take for a damaged second member.
        if format == .raw { archive_write_set_bytes_in_last_block(handle, 1) }
        let client = Unmanaged.passUnretained(self).toOpaque()
        let opened = archive_write_open2(handle, client, nil, { _, client, buffer, length in
            let writer = Unmanaged<ArchiveWriter>.fromOpaque(client!).takeUnretainedValue()
            do {
                try writer.sink(UnsafeRawBufferPointer(start: buffer, count: length))
                return length
            } catch {
                writer.sinkError = error
                return -1
            }
        }, nil, nil)
        if opened != ARCHIVE_OK { throw failure("cannot start writing") }
    }

    deinit {
        // Abandoned (an error on the way): nothing more may reach the sink, whose owner may be going away too.
        if !closed { archive_write_fail(handle) }
        archive_write_free(handle)
    }

    private func failure(_ what: String) -> any Error {
        if let sinkError { return sinkError }
        let detail = archive_error_string(handle).map { String(cString: $0) } ?? "unknown error"
        return StoreError("\(name): \(what): \(detail)")
    }

    /// Starts a member; a regular file's `size` bytes follow through `write`. A member with a
    /// `hardlinkTarget` is a link to that earlier member and has no data.
    public func begin(_ member: ArchiveMember) throws {
        guard let entry = archive_entry_new() else { throw StoreError("\(name): out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, member.path)
        archive_entry_set_filetype(entry, member.kind.fileTypeBits)
        archive_entry_set_perm(entry, mode_t(member.mode & 0o7777))
        archive_entry_set_uid(entry, la_int64_t(member.uid))
        archive_entry_set_gid(entry, la_int64_t(member.gid))
        archive_entry_set_mtime(entry, time_t(member.mtime.seconds), Int(member.mtime.nanoseconds))
        archive_entry_set_size(entry, member.kind == .regular && member.hardlinkTarget == nil ? la_int64_t(member.size) : 0)
        if let target = member.symlinkTarget { archive_entry_set_symlink_utf8(entry, target) }
        if let target = member.hardlinkTarget { archive_entry_set_hardlink_utf8(entry, target) }
        if member.kind == .characterDevice || member.kind == .blockDevice { archive_entry_set_rdev(entry, dev_t(member.device)) }
        for xattr in member.xattrs {
            xattr.value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, xattr.name, $0.baseAddress, $0.count) }
        }
        if archive_write_header(handle, entry) != ARCHIVE_OK { throw failure("cannot write the header of '\(member.path)'") }
    }

    /// Writes the current member's data (or, for `.raw`, the next bytes of the stream).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = archive_write_data(handle, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { throw failure("cannot write data") }
            offset += n
        }
    }

    /// Ends the archive: the tar trailer and the compressor's last bytes reach the sink.
    public func finish() throws {
        closed = true
        if archive_write_close(handle) != ARCHIVE_OK { throw failure("cannot finish the archive") }
    }
}
