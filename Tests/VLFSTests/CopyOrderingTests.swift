import Foundation
import StrataTestSupport
import Testing
@testable import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// A copy-up may skip its fsync only where the filesystem's commit flushes the device cache before it
/// records the rename; everywhere else it fsyncs.
@Suite struct CopyOrderingTests {
    private func ordering(mkfs: String, _ options: String...) throws -> CopyOrdering {
        let scratch = try TemporaryDirectory()
        let image = scratch.path + "/disk.img", mountpoint = scratch.path + "/mnt"
        _ = try shell("truncate -s 64M '\(image)' && mkdir '\(mountpoint)' && \(mkfs) \(options.joined(separator: " ")) '\(image)' >/dev/null && mount -o loop '\(image)' '\(mountpoint)'")
        defer { _ = try? shell("umount '\(mountpoint)'") }
        let directory = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(directory) }
        return CopyOrdering.forFilesystem(of: directory)
    }

    @Test func journaledExt4WritesAheadWithoutAFlush() throws {
        #expect(try ordering(mkfs: "mkfs.ext4 -q -F") == .writtenBeforeCommit)
    }

    @Test func ext4WithoutAJournalFsyncs() throws {
        #expect(try ordering(mkfs: "mkfs.ext4 -q -F", "-O", "^has_journal") == .fsync)
    }

    @Test func tmpfsFsyncs() throws {
        let scratch = try TemporaryDirectory()
        _ = try shell("mount -t tmpfs none '\(scratch.path)'")
        defer { _ = try? shell("umount '\(scratch.path)'") }
        let directory = open(scratch.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(directory) }
        #expect(CopyOrdering.forFilesystem(of: directory) == .fsync)
    }
}
