import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `strata mount --no-open-requests`: the kernel opens regular files itself (FUSE "no open"), the
/// daemon finds each file's descriptor by inode and copies a shared file up at its first change.
/// Where the answer is overlayfs's to give, the same steps run on a kernel overlayfs over the same files.
@Suite(.serialized) struct OpenFreeTests {
    static let options = ["--no-open-requests"]
    static let files = ["etc/app.conf": "conf one\n", "usr/bin/tool": "tool\n", "srv/data.bin": IoUringTests.contents("data", size: 300 << 10)]

    static func mounted(_ label: String = #function) throws -> MountedWorkspace {
        try MountedWorkspace(label, layers: [("app", "1", files)], ldf: ["main/app 1"], mountOptions: options)
    }

    /// A kernel overlayfs whose one lower layer holds the files the VLFS's layer was made from.
    final class Overlay {
        let path: String

        init(_ vlfs: MountedWorkspace) throws {
            let root = vlfs.workspace.scratch.path
            path = root + "/overlay"
            for directory in [path, root + "/upper", root + "/work"] { try makeDirectories(directory) }
            _ = try shell("mount -t overlay overlay -o 'lowerdir=\(root)/trees/app_1,upperdir=\(root)/upper,workdir=\(root)/work' '\(path)'")
        }

        deinit { unmount(path) }
    }

    static func privatePath(_ vlfs: MountedWorkspace, _ relative: String) -> String {
        vlfs.workspace.home + "/vlfs/\(vlfs.name)/private/" + relative
    }

    static func readAll(_ descriptor: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        return count < 0 ? "errno \(errno)" : String(decoding: bytes[..<count], as: UTF8.self)
    }

    /// Once a file's pages are cached, reading it again costs no request at all: no OPEN, RELEASE nor READ.
    @Test func warmReadsSendNoRequests() throws {
        let vlfs = try Self.mounted()
        for (path, text) in Self.files { #expect(try vlfs.read(path) == text) }
        let before = try MountTests().requests(of: vlfs)
        #expect(before["open", default: 0] <= 1, "only the first OPEN, answered ENOSYS: \(before)")
        for _ in 0..<3 {
            for (path, text) in Self.files { #expect(try vlfs.read(path) == text) }
        }
        let warm = try MountTests().requests(of: vlfs).subtracting(before)
        #expect(warm["open"] == nil && warm["release"] == nil && warm["read"] == nil && warm["lookup"] == nil, "\(warm)")
        // A private file too, once written and read.
        try makeDirectories(vlfs.path("var"))
        try vlfs.write("var/note", "note\n")
        #expect(try vlfs.read("var/note") == "note\n")
        let written = try MountTests().requests(of: vlfs)
        #expect(try vlfs.read("var/note") == "note\n")
        #expect(try MountTests().requests(of: vlfs).subtracting(written)["read"] == nil)
    }

    /// An open for writing copies nothing up; the first write does. A reader that opened the shared
    /// file before sees what a reader on overlayfs sees, and the layer keeps the original.
    @Test func firstWriteCopiesUp() throws {
        let vlfs = try Self.mounted()
        let overlay = try Overlay(vlfs)
        var seen: [String] = []
        for root in [vlfs.mountpoint, overlay.path] {
            let reader = open(root + "/etc/app.conf", O_RDONLY)
            defer { close(reader) }
            #expect(Self.readAll(reader) == "conf one\n")
            let writer = open(root + "/etc/app.conf", O_WRONLY)
            defer { close(writer) }
            #expect(writer >= 0)
            if root == vlfs.mountpoint { #expect(access(Self.privatePath(vlfs, "etc/app.conf"), F_OK) != 0, "opening copies nothing up") }
            #expect(pwrite(writer, "CONF", 4, 0) == 4)
            seen.append(Self.readAll(reader))
        }
        #expect(seen[0] == seen[1], "the VLFS reader saw \(seen[0].debugDescription), overlayfs's \(seen[1].debugDescription)")
        #expect(try String(contentsOfFile: Self.privatePath(vlfs, "etc/app.conf"), encoding: .utf8) == "CONF one\n")
        #expect(try vlfs.read("etc/app.conf") == "CONF one\n")
        expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/etc/app.conf"))
        #expect(try vlfs.read("etc/app.conf") == "conf one\n")
    }

    /// O_TRUNC (a SETATTR of size 0 here) copies a shared file up empty.
    @Test func truncatingOpenOfASharedFile() throws {
        let vlfs = try Self.mounted()
        #expect(try vlfs.read("srv/data.bin") == Self.files["srv/data.bin"])
        let fd = open(vlfs.path("srv/data.bin"), O_RDWR | O_TRUNC)
        #expect(fd >= 0)
        var attributes = stat()
        #expect(fstat(fd, &attributes) == 0 && attributes.st_size == 0)
        #expect(Self.readAll(fd) == "")
        #expect(pwrite(fd, "new\n", 4, 0) == 4)
        close(fd)
        #expect(try vlfs.read("srv/data.bin") == "new\n")
        #expect(try String(contentsOfFile: Self.privatePath(vlfs, "srv/data.bin"), encoding: .utf8) == "new\n")
        expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/srv/data.bin"))
        #expect(try vlfs.read("srv/data.bin") == Self.files["srv/data.bin"])
    }

    /// A file unlinked while open stays readable and writable through its descriptor, private or
    /// shared, as on overlayfs.
    @Test func unlinkedFilesStayUsable() throws {
        let vlfs = try Self.mounted()
        let overlay = try Overlay(vlfs)
        var seen: [[String]] = []
        for root in [vlfs.mountpoint, overlay.path] {
            try makeDirectories(root + "/var")
            try "note\n".write(toFile: root + "/var/note", atomically: false, encoding: .utf8)
            let note = open(root + "/var/note", O_RDWR)
            let tool = open(root + "/usr/bin/tool", O_RDONLY)
            defer { close(note); close(tool) }
            #expect(unlink(root + "/var/note") == 0 && unlink(root + "/usr/bin/tool") == 0)
            #expect(pwrite(note, "more\n", 5, 5) == 5)
            var attributes = stat()
            let size = fstat(note, &attributes) == 0 ? "\(attributes.st_size) bytes, \(attributes.st_nlink) links" : "errno \(errno)"
            seen.append([Self.readAll(note), size, Self.readAll(tool), String(access(root + "/var/note", F_OK))])
        }
        #expect(seen[0] == seen[1])
        #expect(seen[0].first == "note\nmore\n")
    }

    /// Data written and fsynced (here into a copy made by that write) survives the daemon's death.
    @Test func fsyncedWritesSurviveKillingTheDaemon() throws {
        let vlfs = try Self.mounted()
        let fd = open(vlfs.path("etc/app.conf"), O_WRONLY)
        #expect(pwrite(fd, "SYNC", 4, 0) == 4)
        #expect(fsync(fd) == 0)
        close(fd)
        let pid = try #require(Int32(try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
        usleep(300_000)
        umount2(vlfs.mountpoint, Int32(MNT_DETACH))
        try vlfs.mount()
        #expect(try vlfs.read("etc/app.conf") == "SYNC one\n")
    }

    /// Shared writable mappings write through to the private layer: of a private file, and of a
    /// shared one (copied up by the write-back).
    @Test func writableMappings() throws {
        let vlfs = try Self.mounted()
        try makeDirectories(vlfs.path("var"))
        try vlfs.write("var/mapped", "mapped\n")
        for (path, expected) in [("var/mapped", "Mapped\n"), ("usr/bin/tool", "Tool\n")] {
            let file = open(vlfs.path(path), O_RDWR)
            #expect(file >= 0)
            let map = try #require(mmap(nil, 4, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0))
            #expect(map != MAP_FAILED)
            map.storeBytes(of: expected.utf8.first!, toByteOffset: 0, as: UInt8.self)
            #expect(msync(map, 4, MS_SYNC) == 0)
            munmap(map, 4)
            close(file)
            #expect(try vlfs.read(path) == expected)
            #expect(try String(contentsOfFile: Self.privatePath(vlfs, path), encoding: .utf8) == expected)
        }
    }

    /// A live update that changes a shared file being read: the reader keeps the bytes it was reading
    /// (the blob its node keeps), a new open sees the new file, and each shows its own size.
    @Test func liveUpdateUnderAReader() throws {
        let vlfs = try MountedWorkspace(layers: MountTests.app, ldf: ["main/app 1", "main/base 1"], mountOptions: Self.options)
        let reader = open(vlfs.path("usr/bin/app"), O_RDONLY)
        defer { close(reader) }
        #expect(Self.readAll(reader) == "app one\n")
        try vlfs.setLDF(["main/app 2", "main/base 1"])
        try vlfs.update()
        #expect(try vlfs.read("usr/bin/app") == "app two\n")
        #expect(Self.readAll(reader) == "app one\n")
        try vlfs.setLDF(["main/app 1", "main/base 1"])
        try vlfs.update()
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
    }

    /// The differential test against overlayfs, with the kernel opening files itself.
    @Test func randomOperationsMatchOverlayfs() throws {
        _ = try DifferentialTests.compare(seed: 5, mountOptions: Self.options)
    }
}
