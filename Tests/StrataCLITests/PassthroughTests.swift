import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Shared files are read by the kernel straight from their CAS blobs (FUSE passthrough), and the
/// kernel's rule that one inode is never open both ways must not show to users.
extension MountTests {
    /// Two VLFSs sharing a layer keep one copy of its files in memory: the blob's pages (for files of
    /// at least `--passthrough-minimum-size`, 128 KiB by default, as libraries and programs mostly are).
    @Test func sharedFilesAreTheirBlobsPages() throws {
        let library = String(repeating: "0123456789abcdef", count: 1 << 14)
        let vlfs = try MountedWorkspace(layers: Self.app + [("lib", "1", ["usr/lib/libbig.so": library])], ldf: ["main/app 1", "main/base 1", "main/lib 1"],
                                        mountOptions: Self.withOpens)
        let second = vlfs.workspace.scratch.path + "/mnt2"
        try makeDirectories(second)
        expectSuccess(try vlfs.workspace.strata(["mount", vlfs.ldf, second, "--name", "second"] + Self.withOpens))
        defer { _ = try? vlfs.workspace.strata("umount", second) }

        let blob = try blobPath(of: vlfs, "usr/lib/libbig.so")
        let frames = try [blob, vlfs.path("usr/lib/libbig.so"), second + "/usr/lib/libbig.so"].map(pageFrame(ofFirstPageOf:))
        #expect(frames[0] != 0)
        #expect(frames[1] == frames[0] && frames[2] == frames[0], "one copy in memory, the blob's: \(frames)")
        // A private file is its own.
        try vlfs.write("etc/app.conf", "edited\n")
        #expect(try pageFrame(ofFirstPageOf: vlfs.path("etc/app.conf")) != frames[0])
    }

    /// Every shared file passed through, however small: the kernel's one-mode-per-inode rule then
    /// meets the small files these tests write and update.
    static let passthroughForAll = ["--passthrough-minimum-size", "0"] + withOpens

    /// Passthrough needs OPEN requests: these tests ask for them whatever STRATA_NO_OPEN says.
    static let withOpens = ["--open-requests"]

    /// Copy-up of an inode that readers hold through passthrough: the writer gets a new inode (same number).
    @Test func writeWhileReadersHoldTheBlob() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"], mountOptions: Self.passthroughForAll)
        let path = vlfs.path("etc/app.conf")
        let before = try inodeNumber(path)
        let reader = try #require(FileHandle(forReadingAtPath: path))
        defer { try? reader.close() }
        #expect(try reader.readToEnd() == Data("conf one\n".utf8))

        // The writer opens the inode the reader holds: it is copied up, and the open succeeds.
        let writer = try #require(FileHandle(forUpdatingAtPath: path))
        try writer.seekToEnd()
        try writer.write(contentsOf: Data("appended\n".utf8))
        try writer.close()

        #expect(try vlfs.read("etc/app.conf") == "conf one\nappended\n")
        #expect(try inodeNumber(path) == before)
        // The reader keeps the file it opened, as with overlayfs.
        try reader.seek(toOffset: 0)
        #expect(try reader.readToEnd() == Data("conf one\n".utf8))
        // Reading again, writing again and reverting all work on the new inode.
        #expect(try vlfs.read("etc/app.conf") == "conf one\nappended\n")
        try vlfs.write("etc/app.conf", "rewritten\n")
        #expect(try vlfs.read("etc/app.conf") == "rewritten\n")
        expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/etc/app.conf"))
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")
    }

    /// A live update gives the file another blob: new opens get a new inode, open ones keep the old blob.
    @Test func updateWhileReadersHoldTheBlob() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"], mountOptions: Self.passthroughForAll)
        let reader = try #require(FileHandle(forReadingAtPath: vlfs.path("usr/bin/app")))
        defer { try? reader.close() }
        #expect(try reader.readToEnd() == Data("app one\n".utf8))
        try vlfs.setLDF(["main/app 2", "main/base 1"])
        try vlfs.update()
        #expect(try vlfs.read("usr/bin/app") == "app two\n")
        try reader.seek(toOffset: 0)
        #expect(try reader.readToEnd() == Data("app one\n".utf8))
        try vlfs.setLDF(["main/app 1", "main/base 1"])
        try vlfs.update()
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
    }

    /// Readers and appenders on the same shared files at once, while reverts keep bringing the shared
    /// originals back: every open succeeds (the ESTALE retry stays inside the kernel) and every read
    /// sees the original first line.
    @Test func readersWritersAndRevertsAtOnce() throws {
        let files = (0..<6).map { ("srv/data/f\($0)", "original \($0)\n") }
        let vlfs = try MountedWorkspace(layers: [("data", "1", Dictionary(uniqueKeysWithValues: files))], ldf: ["main/data 1"],
                                        mountOptions: Self.passthroughForAll)
        let failures = Mutex<[String]>([])
        let opens = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let readers = (0..<3).map { index in
            Thread {
                var round = index
                while !done.load(ordering: .relaxed) {
                    round += 1
                    let (path, original) = files[round % files.count]
                    let fd = open(vlfs.path(path), O_RDONLY)
                    guard fd >= 0 else { failures.withLock { $0.append("read open \(path): errno \(errno)") }; continue }
                    opens.add(1, ordering: .relaxed)
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let count = read(fd, &buffer, buffer.count)
                    if count < original.utf8.count || !buffer[..<count].starts(with: Array(original.utf8)) {
                        failures.withLock { $0.append("read \(path): \(count) bytes") }
                    }
                    close(fd)
                }
            }
        }
        let writers = (0..<2).map { index in
            Thread {
                var round = index * 3
                while !done.load(ordering: .relaxed) {
                    round += 1
                    let (path, _) = files[round % files.count]
                    let fd = open(vlfs.path(path), O_WRONLY | O_APPEND)
                    guard fd >= 0 else { failures.withLock { $0.append("write open \(path): errno \(errno)") }; continue }
                    opens.add(1, ordering: .relaxed)
                    let line = Array("w\(index)-\(round)\n".utf8)
                    if write(fd, line, line.count) != line.count { failures.withLock { $0.append("write \(path): errno \(errno)") } }
                    close(fd)
                    usleep(2_000)
                }
            }
        }
        (readers + writers).forEach { $0.start() }
        for round in 0..<12 {
            expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/" + files[round % files.count].0))
        }
        done.store(true, ordering: .relaxed)
        while (readers + writers).contains(where: { !$0.isFinished }) { usleep(10_000) }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
        #expect(opens.load(ordering: .relaxed) > 100)
        for (path, original) in files { #expect(try vlfs.read(path).hasPrefix(original)) }
    }

    /// Where passthrough is off (or the kernel lacks it), the daemon serves shared files from their
    /// blobs itself: into the FUSE page cache, not the blob's.
    @Test func noPassthroughServesThroughTheDaemon() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        try vlfs.unmount()
        expectSuccess(try vlfs.workspace.strata("mount", vlfs.ldf, vlfs.mountpoint, "--name", vlfs.name, "--no-passthrough"))
        let big = String(repeating: "0123456789abcdef", count: 1 << 16)
        try vlfs.workspace.scratch.write("trees/bulk/var/lib/bulk", big)
        expectSuccess(try vlfs.workspace.strata("layer", "import", "main", vlfs.workspace.scratch.path + "/trees/bulk", "--name", "bulk", "--version", "1"))
        try vlfs.setLDF(["main/app 1", "main/base 1", "main/bulk 1"])
        try vlfs.update()
        #expect(try vlfs.read("var/lib/bulk") == big)
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
        let blob = try blobPath(of: vlfs, "usr/bin/app")
        #expect(try pageFrame(ofFirstPageOf: vlfs.path("usr/bin/app")) != pageFrame(ofFirstPageOf: blob))
        try vlfs.write("usr/bin/app", "patched\n")
        #expect(try vlfs.read("usr/bin/app") == "patched\n")
        try vlfs.setLDF(["main/app 2", "main/base 1", "main/bulk 1"])
        try vlfs.update()
        #expect(try vlfs.read("etc/app.conf") == "conf two\n")
    }

    /// Below `--passthrough-minimum-size`, shared files are cached by the kernel: a file read again and
    /// stat'ed costs an open and a release, no read and no GETATTR (a passthrough read drops the atime
    /// the kernel holds). Larger files are still their blobs' pages.
    @Test func filesBelowThePassthroughMinimumAreCached() throws {
        let big = String(repeating: "0123456789abcdef", count: 512)
        let vlfs = try MountedWorkspace(layers: Self.app + [("bulk", "1", ["var/lib/bulk": big])], ldf: ["main/app 1", "main/base 1", "main/bulk 1"],
                                        mountOptions: ["--passthrough-minimum-size", "4096"] + Self.withOpens)
        #expect(try pageFrame(ofFirstPageOf: vlfs.path("var/lib/bulk")) == pageFrame(ofFirstPageOf: blobPath(of: vlfs, "var/lib/bulk")))
        #expect(try pageFrame(ofFirstPageOf: vlfs.path("usr/bin/app")) != pageFrame(ofFirstPageOf: blobPath(of: vlfs, "usr/bin/app")))

        var attributes = stat()
        #expect(try vlfs.read("usr/bin/app") == "app one\n" && stat(vlfs.path("usr/bin/app"), &attributes) == 0)
        let before = try requests(of: vlfs)
        for _ in 0..<2 { #expect(try vlfs.read("usr/bin/app") == "app one\n" && stat(vlfs.path("usr/bin/app"), &attributes) == 0) }
        #expect(try eventually { try requests(of: vlfs).subtracting(before)["release"] == 2 })
        #expect(try requests(of: vlfs).subtracting(before) == ["open": 2, "release": 2])
    }

    /// A cached shared file gets its blob at its first READ, not at its OPEN (a warm re-read sends
    /// none): an open not read yet still reads the file it opened after its name went, or after a live
    /// update gave its path another file.
    @Test func aCachedFileOpensItsBlobAtItsFirstRead() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"], mountOptions: Self.withOpens)
        let removed = try #require(FileHandle(forReadingAtPath: vlfs.path("etc/os-release")))
        defer { try? removed.close() }
        let updated = try #require(FileHandle(forReadingAtPath: vlfs.path("usr/bin/app")))
        defer { try? updated.close() }
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")

        #expect(unlink(vlfs.path("etc/os-release")) == 0)
        try vlfs.setLDF(["main/app 2", "main/base 1"])
        try vlfs.update()
        #expect(try removed.readToEnd() == Data("strata\n".utf8))
        #expect(try updated.readToEnd() == Data("app one\n".utf8))
        #expect(try vlfs.read("etc/app.conf") == "conf two\n")
        #expect(!FileManager.default.fileExists(atPath: vlfs.path("etc/os-release")))
    }

    /// The CAS blob a shared file of the VLFS is served from, as its `user.strata.digest` names it.
    private func blobPath(of vlfs: MountedWorkspace, _ relative: String) throws -> String {
        let value = try shell("getfattr --only-values -n user.strata.digest '\(vlfs.path(relative))'")
        let digest = try #require(Digest(value.split(separator: ":").last ?? ""))
        return try Repository(at: vlfs.workspace.repository).store.path(of: digest)
    }

    /// The physical page frame behind a file's first page, through a shared read-only mapping.
    private func pageFrame(ofFirstPageOf path: String) throws -> UInt64 {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw SystemError("open", path) }
        defer { close(fd) }
        let size = Int(getpagesize())
        guard let view = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), view != MAP_FAILED else { throw SystemError("mmap", path) }
        defer { munmap(view, size) }
        _ = view.load(as: UInt8.self)
        let pagemap = open("/proc/self/pagemap", O_RDONLY)
        guard pagemap >= 0 else { throw SystemError("open", "/proc/self/pagemap") }
        defer { close(pagemap) }
        var entry: UInt64 = 0
        guard pread(pagemap, &entry, 8, off_t(UInt(bitPattern: view) / UInt(size) * 8)) == 8 else { throw SystemError("pread", "/proc/self/pagemap") }
        return entry >> 63 == 1 ? entry & ((1 << 55) - 1) : 0
    }

    private func inodeNumber(_ path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemError("stat", path) }
        return UInt64(st.st_ino)
    }
}
