import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// FUSE writeback caching (`--writeback-cache`): write() lands in the kernel's page cache
/// and reaches the daemon later, merged, and the kernel keeps regular files' sizes and times. What the
/// VLFS promises must hold all the same: snapshots hold every write that returned, reverts, resets and
/// live updates show the new sizes at once, appends land where they belong.
@Suite(.serialized) struct WritebackTests {
    static let layers = [("app", "1", ["etc/app.conf": "conf one\n", "var/log/app.log": "started\n"]),
                         ("app", "2", ["etc/app.conf": "conf two, and longer\n", "var/log/app.log": "started\n"])]
    static let line = String(repeating: "x", count: 99) + "\n"
    static let options = ["--writeback-cache"]

    /// Appends as Postmark makes them (seek to the end, write) reach the daemon merged, one WRITE per
    /// close, and ask for no size; without the cache each write is a WRITE (one more where it crosses a
    /// page), and each seek to the end asks for the size the last write made stale.
    @Test func appendsAreMergedAndAskForNoSize() throws {
        for cached in [true, false] {
            let vlfs = try MountedWorkspace("appends-\(cached)", layers: Self.layers, ldf: ["main/app 1"],
                                            mountOptions: cached ? Self.options : [])
            let before = try MountTests().requests(of: vlfs)
            for _ in 0..<3 {
                let fd = open(vlfs.path("var/log/app.log"), O_WRONLY | O_APPEND)
                #expect(fd >= 0)
                for _ in 0..<50 {
                    #expect(lseek(fd, 0, SEEK_END) >= 8)
                    #expect(Glibc.write(fd, Self.line, 100) == 100)
                }
                close(fd)
            }
            let counts = try MountTests().requests(of: vlfs).subtracting(before)
            if cached {
                #expect(counts["write"] == 3, "\(counts)")
                #expect(counts["getattr"] == nil, "\(counts)")
            } else {
                #expect((counts["write"] ?? 0) >= 150, "\(counts)")
                #expect((counts["getattr"] ?? 0) >= 140, "\(counts)")
            }
            let expected = "started\n" + String(repeating: Self.line, count: 150)
            #expect(try vlfs.read("var/log/app.log") == expected)
            #expect(try String(contentsOfFile: privateFile(vlfs, "var/log/app.log"), encoding: .utf8) == expected)
        }
    }

    /// The kernel sends a page again when more of it is written; the private file must not be opened
    /// for appending, or each resend would land at its end.
    @Test func appendsSyncedOneByOneLandOnce() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let first = open(vlfs.path("var/log/app.log"), O_WRONLY | O_APPEND)
        let second = open(vlfs.path("var/log/app.log"), O_RDWR | O_APPEND)
        #expect(first >= 0 && second >= 0)
        for index in 0..<6 {
            let fd = index % 2 == 0 ? first : second
            #expect(Glibc.write(fd, Self.line, 100) == 100)
            #expect(fsync(fd) == 0)
        }
        close(first)
        close(second)
        let expected = "started\n" + String(repeating: Self.line, count: 6)
        #expect(try vlfs.read("var/log/app.log") == expected)
        #expect(try String(contentsOfFile: privateFile(vlfs, "var/log/app.log"), encoding: .utf8) == expected)
    }

    /// A snapshot asked for after write() returned holds what was written, though the writer neither
    /// synced nor closed the file (nor unmapped its mapping). The writer is another process: a close of
    /// any copy of its descriptors, as a fork and exec here would make, flushes the file.
    @Test func aSnapshotHoldsWritesThatReturned() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let writer = try HeldWriter("""
            import mmap, os, sys
            root = sys.argv[1]
            created = os.open(root + "/etc/created", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(created, b"written, not synced\\n")
            appended = os.open(root + "/var/log/app.log", os.O_WRONLY | os.O_APPEND)
            os.write(appended, b"x" * 99 + b"\\n")
            mapped = os.open(root + "/etc/mapped", os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(mapped, 4096)
            page = mmap.mmap(mapped, 4096)
            page[:19] = b"mapped, not synced\\n"
            """, vlfs.mountpoint)
        defer { writer.finish() }
        #expect(try String(contentsOfFile: privateFile(vlfs, "etc/created"), encoding: .utf8).isEmpty, "the kernel holds the write")

        let digest = expectSuccess(try vlfs.workspace.strata("image", "snapshot", vlfs.name, "--image", "held")).stdout.split(separator: "\n")[0]
        let image = vlfs.workspace.scratch.path + "/image"
        try makeDirectories(image)
        expectSuccess(try vlfs.workspace.strata("image", "mount", String(digest), image))
        defer { _ = try? vlfs.workspace.strata("umount", image) }
        #expect(try String(contentsOfFile: image + "/etc/created", encoding: .utf8) == "written, not synced\n")
        #expect(try String(contentsOfFile: image + "/var/log/app.log", encoding: .utf8) == "started\n" + Self.line)
        let mappedBytes = try Data(contentsOf: URL(fileURLWithPath: image + "/etc/mapped"))
        #expect(mappedBytes.count == 4096)
        #expect(String(decoding: mappedBytes.prefix(19), as: UTF8.self) == "mapped, not synced\n")
    }

    /// After a revert and a reset, stat and read show the shared file's size and bytes, not the size the
    /// kernel cached for the private copy (even one still open with writes the kernel holds).
    @Test func revertAndResetShowTheSharedSizes() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let longer = "a private configuration, longer than the shared one\n"
        try vlfs.write("etc/app.conf", longer)
        #expect(try size(vlfs, "etc/app.conf") == longer.utf8.count)
        expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/etc/app.conf"))
        #expect(try size(vlfs, "etc/app.conf") == 9)
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")

        let open = Glibc.open(vlfs.path("etc/app.conf"), O_WRONLY | O_APPEND)
        #expect(Glibc.write(open, longer, longer.utf8.count) == longer.utf8.count)
        #expect(try size(vlfs, "etc/app.conf") == 9 + longer.utf8.count)
        expectSuccess(try vlfs.workspace.strata("private", "reset", vlfs.name))
        #expect(try size(vlfs, "etc/app.conf") == 9)
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")
        close(open)
        #expect(try vlfs.read("etc/app.conf") == "conf one\n", "writes on the old file stay with the evidence")
        #expect(try size(vlfs, "etc/app.conf") == 9)
    }

    /// A live update that changes a shared file's size shows the new size and bytes at once, also while
    /// a process holds the old file open (as running programs hold their libraries).
    @Test func liveUpdatesShowNewSizes() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let held = open(vlfs.path("etc/app.conf"), O_RDONLY)
        defer { close(held) }
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")
        try vlfs.setLDF(["main/app 2"])
        try vlfs.update()
        #expect(try size(vlfs, "etc/app.conf") == 21)
        #expect(try vlfs.read("etc/app.conf") == "conf two, and longer\n")
    }

    /// A reader of a shared file keeps the file it opened while a writer copies it up, as with
    /// overlayfs: the writer's open gets a new inode, or the reader would read the writer's pages.
    @Test func readersKeepTheSharedFileWhileAWriterCopiesItUp() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let reader = try #require(FileHandle(forReadingAtPath: vlfs.path("etc/app.conf")))
        defer { try? reader.close() }
        #expect(try reader.readToEnd() == Data("conf one\n".utf8))
        let writer = try #require(FileHandle(forUpdatingAtPath: vlfs.path("etc/app.conf")))
        try writer.seekToEnd()
        try writer.write(contentsOf: Data("appended\n".utf8))
        try writer.close()
        try reader.seek(toOffset: 0)
        #expect(try reader.readToEnd() == Data("conf one\n".utf8))
        #expect(try vlfs.read("etc/app.conf") == "conf one\nappended\n")
    }

    /// Mapped writes reach the private layer by the time the file is closed, and survive a remount.
    @Test func mappedWritesReachThePrivateLayer() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let fd = open(vlfs.path("etc/app.conf"), O_RDWR)
        let page = try #require(mmap(nil, 9, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
        #expect(page != MAP_FAILED)
        _ = "CONF".withCString { memcpy(page, $0, 4) }
        munmap(page, 9)
        close(fd)
        #expect(try String(contentsOfFile: privateFile(vlfs, "etc/app.conf"), encoding: .utf8) == "CONF one\n")
        try vlfs.unmount()
        try vlfs.mount()
        #expect(try vlfs.read("etc/app.conf") == "CONF one\n")
    }

    /// `private status` (and `scan vlfs:`, which shares it) judges what a writer wrote though the bytes
    /// are still in the kernel's cache: the daemon pushes them to the private layer first.
    @Test func privateStatusSeesWritesThatReturned() throws {
        let vlfs = try MountedWorkspace(layers: Self.layers, ldf: ["main/app 1"], mountOptions: Self.options)
        let payload = "known bad payload\n"
        let denyList = vlfs.workspace.scratch.path + "/deny"
        try AtomicFile.write("\(SHA256.hash(Array(payload.utf8)).description) dropper\n", to: denyList)
        let writer = try HeldWriter("""
            import os, sys
            dropped = os.open(sys.argv[1] + "/etc/dropped", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(dropped, sys.argv[2].encode())
            """, vlfs.mountpoint, payload)
        defer { writer.finish() }
        #expect(try String(contentsOfFile: privateFile(vlfs, "etc/dropped"), encoding: .utf8).isEmpty, "the kernel holds the write")

        let status = expectSuccess(try vlfs.workspace.strata("private", "status", vlfs.name, "--deny", denyList)).stdout
        let line = status.split(separator: "\n").first { $0.contains("/etc/dropped") }
        #expect(line?.hasPrefix("critical") == true && line?.contains("dropper") == true, "\(status)")
        #expect(try String(contentsOfFile: privateFile(vlfs, "etc/dropped"), encoding: .utf8) == payload)
    }

    /// Another process that runs a Python script writing through the mount, then holds its descriptors
    /// open (a close would flush them) until `finish`.
    private struct HeldWriter {
        let process = Process()
        let input = Pipe()

        init(_ script: String, _ arguments: String...) throws {
            let output = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script + "\nprint(\"ready\", flush=True)\nsys.stdin.read()\n"] + arguments
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            #expect(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready"))
        }

        func finish() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    private func privateFile(_ vlfs: MountedWorkspace, _ path: String) -> String {
        vlfs.workspace.home + "/vlfs/\(vlfs.name)/private/" + path
    }

    private func size(_ vlfs: MountedWorkspace, _ path: String) throws -> Int {
        var attributes = stat()
        guard stat(vlfs.path(path), &attributes) == 0 else { throw SystemError("stat", vlfs.path(path)) }
        return attributes.st_size
    }
}
