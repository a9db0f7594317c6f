import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct MountTableTests {
    /// /proc/self/mounts reports no size; a reader that stops at its first page misses the newest
    /// mounts once there are a few dozen (which made `strata mount` wait 30 s for a mount it had made).
    @Test func seesEveryMountAndUnescapesPaths() throws {
        let scratch = try TemporaryDirectory()
        var mountpoints: [String] = []
        // Each line is over 100 bytes: 70 of them are well past the first 4 KiB.
        for index in 0..<70 {
            let mountpoint = scratch.path + "/with space \(index)"
            try makeDirectories(mountpoint)
            #expect(mount("strata-test", mountpoint, "tmpfs", 0, nil) == 0, "mount tmpfs at \(mountpoint): errno \(errno)")
            mountpoints.append(mountpoint)
        }
        defer { for mountpoint in mountpoints.reversed() { umount2(mountpoint, Int32(MNT_DETACH)) } }
        let table = MountTable.current()
        for mountpoint in mountpoints {
            #expect(table.contains { $0.mountpoint == mountpoint && $0.type == "tmpfs" && $0.source == "strata-test" }, "\(mountpoint)")
            #expect(MountTable.isMounted(mountpoint, type: "tmpfs"))
        }
        #expect(!MountTable.isMounted(scratch.path + "/never"))
    }
}
