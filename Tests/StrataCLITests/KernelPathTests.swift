import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `strata mount --kernel`: kernel overlayfs over an EROFS metadata image whose files redirect into the
/// CAS. Checked against the FUSE VLFS of the same LDF, entry by entry.
@Suite(.serialized) struct KernelPathTests {
    /// Every entry below `directory` as a tree entry (content hashed), without overlayfs's own attributes
    /// (the kernel hides them; the VLFS shows a configuration layer's opaque mark) and the VLFS's
    /// `user.strata.*`, which only the daemon answers. A directory's digest covers its children's attributes
    /// unfiltered, so it is left out: each child is compared itself.
    static func entries(_ directory: String, store: ObjectStore) throws -> [String: TreeEntry] {
        try listing(of: directory, store: store).entries.mapValues { entry in
            var entry = entry
            entry.xattrs.removeAll { $0.name.hasPrefix("trusted.overlay.") || $0.name.hasPrefix("user.strata.") }
            if entry.kind == .directory { entry.digest = nil }
            return entry
        }
    }

    /// Names, types, modes, owners, times, sizes, contents, symlink targets, device numbers, xattrs and
    /// hard links of both mounts, entry by entry.
    static func expectSameEntries(_ vlfs: String, _ kernel: String, store: ObjectStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = try entries(vlfs, store: store)
        let actual = try entries(kernel, store: store)
        #expect(!expected.isEmpty, sourceLocation: sourceLocation)
        let differences = Set(expected.keys).union(actual.keys).sorted().filter { expected[$0] != actual[$0] }
        for path in differences.prefix(10) {
            Issue.record("/\(path): VLFS \(expected[path].map { "\($0)" } ?? "absent"), kernel \(actual[path].map { "\($0)" } ?? "absent")", sourceLocation: sourceLocation)
        }
    }

    static func mounts(under path: String) -> [MountTable.Mount] {
        MountTable.current().filter { $0.mountpoint.hasPrefix(path) || $0.source.hasPrefix(path) }
    }

    @Test func aKernelMountShowsWhatTheVLFSShowsWithDeletionsAndOpaqueDirectoriesApplied() throws {
        let workspace = try Workspace("kernel-same")
        let ldf = try OCITests.layers(in: workspace)
        let vlfs = workspace.scratch.path + "/vlfs", kernel = workspace.scratch.path + "/kernel"
        for directory in [vlfs, kernel] { try makeDirectories(directory) }
        try workspace.mount(ldf, at: vlfs)
        defer { unmount(vlfs) }
        expectSuccess(try workspace.strata("mount", "--kernel", ldf, kernel, "--name", "app-kernel"))
        defer { unmount(kernel) }
        #expect(MountTable.current().contains { $0.mountpoint == kernel && $0.type == "overlay" && $0.source == "strata-kernel:app-kernel" })

        try Self.expectSameEntries(vlfs, kernel, store: try ObjectStore(root: workspace.repository))
        // The configuration layer's deletion and opaque directory, and the base layer's hard link.
        #expect(access(kernel + "/etc/remove-me", F_OK) != 0 && errno == ENOENT)
        #expect(try FileManager.default.contentsOfDirectory(atPath: kernel + "/data/old").sorted() == ["c"])
        #expect(try String(contentsOfFile: kernel + "/etc/app.conf", encoding: .utf8) == "port 8080\n")
        var tool = stat(), again = stat()
        #expect(lstat(kernel + "/usr/bin/tool", &tool) == 0 && lstat(kernel + "/usr/bin/tool-again", &again) == 0)
        #expect(tool.st_ino == again.st_ino && tool.st_nlink == 2)
        // No loop device and no second mount: the image's mount is detached, held by the overlayfs.
        #expect(Self.mounts(under: workspace.scratch.path).map(\.mountpoint).sorted() == [kernel, vlfs].sorted())
    }

    @Test func writesGoToTheUpperDirectoryTheImageIsReusedAndUnmountLeavesNothing() throws {
        let workspace = try Workspace("kernel-writes")
        let ldf = try OCITests.layers(in: workspace)
        let kernel = workspace.scratch.path + "/kernel"
        try makeDirectories(kernel)
        let first = expectSuccess(try workspace.strata("mount", "--kernel", ldf, kernel))
        #expect(first.stderr.contains("built"), "\(first.stderr)")
        let upper = workspace.home + "/vlfs/app/kernel/upper"
        do {
            defer { unmount(kernel) }
            try AtomicFile.write("new\n", to: kernel + "/srv/new")
            let changed = open(kernel + "/etc/app.conf", O_WRONLY | O_APPEND)
            #expect(changed >= 0 && write(changed, "x\n", 2) == 2)
            close(changed)
            #expect(unlink(kernel + "/usr/bin/t") == 0)
            #expect(try String(contentsOfFile: upper + "/srv/new", encoding: .utf8) == "new\n")
            // overlayfs's own marks cannot be forged through the mount: it stores them escaped.
            try ExtendedAttributes.set(kernel + "/srv/new", ExtendedAttribute(name: "trusted.overlay.redirect", value: Array("/aa/bb".utf8)))
            #expect(try ExtendedAttributes.list(upper + "/srv/new").map(\.name).filter { $0.hasPrefix("trusted.overlay.") } == ["trusted.overlay.overlay.redirect"])
            #expect(try String(contentsOfFile: upper + "/etc/app.conf", encoding: .utf8) == "port 8080\nx\n")
            var deleted = stat()
            #expect(lstat(upper + "/usr/bin/t", &deleted) == 0 && (deleted.st_mode & S_IFMT) == S_IFCHR && deleted.st_rdev == 0, "a deletion is overlayfs's whiteout")
            // The blob and the FUSE VLFS's own private layer are untouched.
            let blob = try ObjectStore(root: workspace.repository).path(of: SHA256.hash(Array("port 8080\n".utf8)))
            #expect(try String(contentsOfFile: blob, encoding: .utf8) == "port 8080\n")
            #expect(!FileManager.default.fileExists(atPath: workspace.home + "/vlfs/app/private/srv/new"))
            expectSuccess(try workspace.strata("umount", kernel))
        }
        #expect(Self.mounts(under: workspace.scratch.path).isEmpty)

        let images = try FileManager.default.contentsOfDirectory(atPath: workspace.home + "/cache/erofs")
        #expect(images.count == 1 && images[0].hasSuffix(".erofs"), "\(images)")
        var built = stat()
        #expect(stat(workspace.home + "/cache/erofs/" + images[0], &built) == 0)
        // Again by the VLFS's name: the same image, and what was written before.
        let second = expectSuccess(try workspace.strata("mount", "--kernel", "vlfs:app", kernel))
        defer { unmount(kernel) }
        #expect(second.stderr.contains("reused"), "\(second.stderr)")
        var reused = stat()
        #expect(stat(workspace.home + "/cache/erofs/" + images[0], &reused) == 0 && reused.st_ino == built.st_ino)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workspace.home + "/cache/erofs") == images)
        #expect(try String(contentsOfFile: kernel + "/srv/new", encoding: .utf8) == "new\n")
        #expect(access(kernel + "/usr/bin/t", F_OK) != 0 && access(kernel + "/usr/bin/tool", X_OK) == 0)
        expectSuccess(try workspace.strata("umount", kernel))
        #expect(!MountTable.isMounted(kernel))
    }

    @Test func aKernelMountOfDebianPackagesShowsTheVLFSTreeAndDpkgDatabaseAndRuns() throws {
        let workspace = try Workspace("kernel-debian")
        expectSuccess(try workspace.strata(["layer", "import", "main"] + (try downloadedPackages(RootFilesystemTests.packages))))
        let ldf = workspace.scratch.path + "/rootfs.ldf"
        try AtomicFile.write(RootFilesystemTests.packages.map { "main/\($0)" }.joined(separator: "\n") + "\n", to: ldf)
        let vlfs = workspace.scratch.path + "/vlfs", kernel = workspace.scratch.path + "/kernel"
        for directory in [vlfs, kernel] { try makeDirectories(directory) }
        // Neither configures: the kernel path runs no scripts, and both show the same dpkg database.
        expectSuccess(try workspace.strata("mount", ldf, vlfs, "--no-configure"))
        defer { unmount(vlfs) }
        expectSuccess(try workspace.strata("mount", "--kernel", ldf, kernel, "--name", "rootfs-kernel"))
        defer { unmount(kernel) }
        #expect(FileManager.default.fileExists(atPath: kernel + "/var/lib/dpkg/status"))
        try Self.expectSameEntries(vlfs, kernel, store: try ObjectStore(root: workspace.repository))
        let output = try shell("chroot '\(kernel)' /bin/bash -c 'echo \"bash $BASH_VERSION\"; /bin/sh -c \"echo dash ok\"'")
        #expect(output.hasPrefix("bash 5.") && output.hasSuffix("dash ok\n"), "\(output)")
    }

    @Test func layersNotWholeInTheirMirrorAreRefusedUnlessFetchedFirst() throws {
        let remote = try RemoteWorkspace(.strata, label: "kernel-lazy")
        try AtomicFile.write("remote/app 1\nremote/base 1\n", to: remote.ldf)
        let refused = try remote.client("mount", "--kernel", remote.ldf, remote.mountpoint)
        #expect(refused.status != 0 && refused.stderr.contains("not whole") && refused.stderr.contains("remote/app 1")
            && refused.stderr.contains("--fetch before-mount"), "\(refused.stderr)")
        #expect(!MountTable.isMounted(remote.mountpoint))
        expectSuccess(try remote.client("mount", "--kernel", remote.ldf, remote.mountpoint, "--fetch", "before-mount"))
        defer { unmount(remote.mountpoint) }
        #expect(try remote.read("usr/bin/app") == "app one\n")
    }

    @Test func fleetStatusShowsAKernelMountAndGCKeepsTheImageEachVLFSLastMounted() throws {
        let fleet = try FleetWorkspace("kernel-fleet", layers: [TemplateTests.layers[0], TemplateTests.layers[1]])
        try fleet.template("web", ["main/base 1", "main/tool 1"]) { _ in }
        expectSuccess(try fleet.workspace.strata("provision", "app01", "app02", "--template", "web"))
        let kernel = fleet.workspace.scratch.path + "/kernel"
        try makeDirectories(kernel)
        expectSuccess(try fleet.workspace.strata("mount", "--kernel", fleet.home + "/appliances/app01.ldf", kernel, "--name", "app01"))
        defer { unmount(kernel) }

        let rows = try #require(try JSONSerialization.jsonObject(with: Data(expectSuccess(try fleet.workspace.strata("appliance", "list", "--json")).stdout.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["mounted"] as? Bool } == [true, false] && rows.map { $0["kernelPath"] as? Bool } == [true, false], "\(rows)")
        #expect(expectSuccess(try fleet.workspace.strata("appliance", "list")).stdout.hasPrefix("app01\tweb\t-\tmounted (kernel path)\t"))
        // The kernel path takes a new composition at its next mount, not live.
        try fleet.importLayer("tool", "2", ["usr/bin/tool": "two\n"])
        expectSuccess(try fleet.workspace.strata("ldf", "upgrade", fleet.home + "/templates/web.ldf"))
        let status = expectSuccess(try fleet.workspace.strata("fleet", "status")).stdout.split(separator: "\n")
        #expect(status.first?.hasPrefix("app01\tweb\tpending-remount\t+ main/tool 2, - main/tool 1") == true, "\(status)")
        #expect(try String(contentsOfFile: kernel + "/usr/bin/tool", encoding: .utf8) == "one\n")

        // An image no VLFS last mounted and a killed build go; app01's image stays, even unmounted.
        let cache = fleet.home + "/cache/erofs"
        let mountedImage = try #require(try FileManager.default.contentsOfDirectory(atPath: cache).first)
        let stale = String(repeating: "ab", count: 32) + ".erofs"
        try AtomicFile.write("old image", to: cache + "/" + stale)
        try makeDirectories(cache + "/build-4194304/tree")
        let dry = try #require(try JSONSerialization.jsonObject(with: Data(expectSuccess(try fleet.workspace.strata("gc", "--dry-run", "--json")).stdout.utf8)) as? [[String: Any]])
        let images = try #require(dry.last)
        #expect(images["store"] as? String == cache && images["objects"] as? Int == 2 && images["reachable"] as? Int == 1
            && images["freed"] as? [String] == ["sha256:" + String(repeating: "ab", count: 32)], "\(images)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: cache)) == [mountedImage, stale, "build-4194304"])
        expectSuccess(try fleet.workspace.strata("umount", kernel))
        let collected = expectSuccess(try fleet.workspace.strata("gc")).stdout
        #expect(collected.contains(cache + ": 2 metadata images, 1 last mounted, freed 1"), "\(collected)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache) == [mountedImage])
        // Mounted again, it takes the new composition with a new image; the old one is then free.
        let again = expectSuccess(try fleet.workspace.strata("mount", "--kernel", "vlfs:app01", kernel))
        #expect(again.stderr.contains("built"), "\(again.stderr)")
        #expect(try String(contentsOfFile: kernel + "/usr/bin/tool", encoding: .utf8) == "two\n")
        #expect(expectSuccess(try fleet.workspace.strata("gc")).stdout.contains(cache + ": 2 metadata images, 1 last mounted, freed 1"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).count == 1)
        #expect(try String(contentsOfFile: kernel + "/usr/bin/tool", encoding: .utf8) == "two\n")
    }

    @Test func aVLFSOfTheSameNameInAnotherHomeIsAnotherVLFS() throws {
        let first = try Workspace("kernel-home-one"), second = try Workspace("kernel-home-two")
        let mountpoints = [first.scratch.path + "/kernel", second.scratch.path + "/kernel"]
        for (workspace, mountpoint) in zip([first, second], mountpoints) {
            try makeDirectories(mountpoint)
            expectSuccess(try workspace.strata("mount", "--kernel", try OCITests.layers(in: workspace), mountpoint, "--name", "app"))
        }
        defer { mountpoints.forEach(unmount) }
        let mounted = MountTable.current().filter { $0.source == "strata-kernel:app" }.map(\.mountpoint)
        #expect(mountpoints.allSatisfy(mounted.contains), "\(mounted)")
        // Its own home still knows its VLFS mounted.
        let again = try first.strata("mount", "--kernel", "vlfs:app", first.scratch.path)
        #expect(again.status != 0 && again.stderr.contains("is mounted on the kernel path at \(mountpoints[0])"), "\(again.stderr)")
    }
}
