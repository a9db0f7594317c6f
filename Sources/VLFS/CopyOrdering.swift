import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a copy's bytes are put on the disk before the rename that publishes it, so that a crash shows
/// the original or the whole copy, never a short one.
enum CopyOrdering: Sendable, Equatable {
    /// Write the bytes out and wait for the device to take them, without a cache flush. On a filesystem
    /// whose journal (or copy-on-write commit) flushes the device cache before it commits, the
    /// rename commits in the transaction that records the copy's size and extents or in a later one,
    /// so the flush that makes the rename durable makes the bytes durable too. Costs the write, not
    /// the journal commit and flush an fsync of a new file forces.
    case writtenBeforeCommit
    /// Everything else (no journal, or a filesystem we know nothing of): fsync the copy.
    case fsync

    /// The ordering the filesystem holding `directory` guarantees.
    static func forFilesystem(of directory: Int32) -> CopyOrdering {
        var info = statfs()
        guard fstatfs(directory, &info) == 0 else { return .fsync }
        switch UInt32(truncatingIfNeeded: info.f_type) {
        case 0x5846_5342, 0x9123_683E: return .writtenBeforeCommit  // XFS, Btrfs: always logged
        case 0xEF53: return ext4HasJournal(directory) ? .writtenBeforeCommit : .fsync
        default: return .fsync
        }
    }

    /// ext4 (or ext2/3 through the ext4 driver) lists `data=` among its options only with a journal;
    /// `nobarrier` drops the flush before the commit, which the ordering needs.
    private static func ext4HasJournal(_ directory: Int32) -> Bool {
        var status = stat()
        guard fstat(directory, &status) == 0 else { return false }
        let device = "\(strata_major(status.st_dev)):\(strata_minor(status.st_dev))"
        guard let block = try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/dev/block/" + device),
              let options = try? String(contentsOfFile: "/proc/fs/ext4/\((block as NSString).lastPathComponent)/options", encoding: .utf8)
        else { return false }
        let words = Set(options.split(whereSeparator: { $0.isWhitespace }).map(String.init))
        return !words.contains("nobarrier") && (words.contains("data=ordered") || words.contains("data=journal") || words.contains("data=writeback"))
    }

    /// Starts writing the bytes of `file` out, so that `finish` has less to wait for.
    func start(_ file: Int32) {
        _ = sync_file_range(file, 0, 0, 2)  // SYNC_FILE_RANGE_WRITE; `finish` reports any failure
    }

    /// Puts the bytes of `file` in order before its rename.
    func finish(_ file: Int32) throws(FSError) {
        switch self {
        case .writtenBeforeCommit:
            // Wait for writeback already under way, start it for the rest, and wait for all of it.
            try check { sync_file_range(file, 0, 0, 1 | 2 | 4) }
        case .fsync:
            try check { Glibc.fsync(file) }
        }
    }
}
