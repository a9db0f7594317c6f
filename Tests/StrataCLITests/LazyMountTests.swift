import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Mounts that serve before their layers are mirrored: a file's blob comes when it is first opened.
@Suite(.serialized) struct LazyMountTests {
    static let bulk = RemoteWorkspace.layers.last!.files["var/lib/bulk/data"]!
    static let bulkBlob = SHA256.hash(Array(bulk.utf8))
    static let appBlob = SHA256.hash(Array("app one\n".utf8))

    /// Requests the server logged for one object.
    static func requests(for digest: Digest, on remote: RemoteWorkspace) -> [String] {
        remote.server.requests().filter { $0.contains(digest.hex.dropFirst(2)) }
    }

    /// A served layer's directory trees by path ("" is its root).
    static func trees(of layer: String, on remote: RemoteWorkspace) throws -> [String: Digest] {
        let repository = try Repository(at: remote.workspace.repository)
        let root = try repository.layerManifest(try #require(try repository.find(layer))).filesystem.digest!
        var trees = ["": root]
        try repository.store.walk(root) { path, entry in
            if entry.kind == .directory { trees[path] = entry.digest! }
        }
        return trees
    }

    /// Waits up to `seconds` for `condition`.
    static func eventually(_ seconds: Int = 30, _ condition: () throws -> Bool) rethrows -> Bool {
        for _ in 0..<(seconds * 10) {
            if try condition() { return true }
            usleep(100_000)
        }
        return try condition()
    }

    @Test(arguments: ServerKind.allCases) func aLazyMountServesAtOnceAndFetchesEachFileOnceWhenFirstOpened(_ kind: ServerKind) throws {
        let remote = try RemoteWorkspace(kind, label: "lazy-open")
        try AtomicFile.write("remote/app 1\nremote/base 1\nremote/bulk 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "on-open"))
        #expect(try remote.mirrorObjects().isDisjoint(with: [Self.bulkBlob, Self.appBlob]), "no file's content is fetched to mount")
        let bulkTrees = try Self.trees(of: "bulk", on: remote)
        // (The mount itself reads /var/lib, where the dpkg database would be.)
        #expect(try !remote.mirrorObjects().contains(bulkTrees["var/lib/bulk"]!), "a directory that one layer alone provides is not fetched to mount")
        let sharedTrees = [try Self.trees(of: "app", on: remote)["etc"]!, try Self.trees(of: "base", on: remote)["etc"]!]
        #expect(try remote.mirrorObjects().isDisjoint(with: sharedTrees), "where layers meet, their path lists decide: /etc's trees are not fetched to mount")
        // Listing and stat need only the trees, each fetched when first listed.
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mountpoint + "/var/lib/bulk") == ["data"])
        #expect(try Self.eventually(5) { try remote.mirrorObjects().isSuperset(of: bulkTrees.values) })
        #expect(try FileManager.default.attributesOfItem(atPath: remote.mountpoint + "/var/lib/bulk/data")[.size] as? Int == Self.bulk.utf8.count)
        #expect(try !remote.mirrorObjects().contains(Self.bulkBlob))

        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try Self.eventually(5) { try remote.mirrorObjects().contains(Self.appBlob) }, "the opened file is committed to the mirror a moment later")
        #expect(try !remote.mirrorObjects().contains(Self.bulkBlob), "and nothing else")

        // Eight readers at once of a file not yet here: one download, every reader gets it whole.
        let results = Mutex<[Bool]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let ok = (try? remote.read("var/lib/bulk/data")) == Self.bulk
            results.withLock { $0.append(ok) }
        }
        #expect(results.withLock { $0 } == Array(repeating: true, count: 8))
        #expect(Self.requests(for: Self.bulkBlob, on: remote).count == 1, "\(Self.requests(for: Self.bulkBlob, on: remote))")

        let status = expectSuccess(try remote.client("mirror", "status", "remote")).stdout
        #expect(status.contains("app 1 partial 2 files") && status.contains("(1 files, 8 bytes local)"), "\(status)")
        #expect(status.contains("0 of 3 layers local"), "\(status)")
        expectSuccess(try remote.client("umount", remote.mountpoint))

        // The next mount fetches what this one opened first, in bulk, before anything asks for it.
        let recorded = try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/first-opens", encoding: .utf8).split(separator: "\0")
        #expect(recorded == ["usr/bin/app", "var/lib/bulk/data"])
        let store = try ObjectStore(root: remote.mirror)
        for blob in [Self.appBlob, Self.bulkBlob] { try store.remove(blob) }
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "on-open"))
        #expect(try Self.eventually { try remote.mirrorObjects().isSuperset(of: [Self.appBlob, Self.bulkBlob]) }, "prefetched without an open")
        #expect(Self.requests(for: Self.bulkBlob, on: remote).count == 2)
        #expect(try remote.read("var/lib/bulk/data") == Self.bulk)
        #expect(Self.requests(for: Self.bulkBlob, on: remote).count == 2, "an open of a prefetched file asks nothing")
    }

    @Test func aFailedLazyFetchFailsThatOpenAloneAndTheDaemonLivesOn() throws {
        let remote = try RemoteWorkspace(.strata, label: "lazy-fail")
        try AtomicFile.write("remote/app 1\nremote/base 1\nremote/bulk 1\n", to: remote.ldf)
        let served = try remote.servedObjectPath(Self.appBlob)
        chmod(served, 0o644)
        try AtomicFile.write("app ONE\n", to: served)
        // And a directory that one layer alone provides, so that the mount itself does not read it.
        let bulkTree = try #require(try Self.trees(of: "bulk", on: remote)["var/lib/bulk"])
        let servedTree = try remote.servedObjectPath(bulkTree)
        let goodTree = try FileDescriptor.open(servedTree, O_RDONLY).readAll()
        chmod(servedTree, 0o644)
        try AtomicFile.write(goodTree + [0], to: servedTree)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "on-open"))
        let pid = try #require(Int32(try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))

        // Where the kernel opens files itself (STRATA_NO_OPEN=1), the blob is fetched at the first read.
        let fd = open(remote.mountpoint + "/usr/bin/app", O_RDONLY)
        var byte: UInt8 = 0
        let failure = fd < 0 ? errno : read(fd, &byte, 1) < 0 ? errno : 0
        if fd >= 0 { close(fd) }
        #expect(failure == EIO, "a file whose content does not verify cannot be opened or read (errno \(failure))")
        #expect(try execute("/bin/ls", [remote.mountpoint + "/var/lib/bulk"]).status != 0, "a directory whose tree does not verify cannot be listed")
        #expect(try remote.read("etc/os-release") == "strata\n", "other files still open")
        #expect(kill(pid, 0) == 0, "the daemon is alive")
        let log = try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.log", encoding: .utf8)
        #expect(log.contains("layer app 1: fetching \(Self.appBlob) failed") && log.contains("is corrupt"), "\(log)")
        #expect(log.contains("layer bulk 1: reading tree \(bulkTree) failed"), "\(log)")
        #expect(try remote.mirrorObjects().isDisjoint(with: [Self.appBlob, bulkTree]), "nothing bad is stored")

        // The next open, and the next listing, try again.
        try AtomicFile.write("app one\n", to: served)
        try AtomicFile.write(goodTree, to: servedTree)
        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mountpoint + "/var/lib/bulk") == ["data"])
    }

    @Test func theDefaultLazyMountCompletesItsMirrorInTheBackgroundAndThenNeedsNoServer() throws {
        let remote = try RemoteWorkspace(.strata, label: "lazy-all")
        try AtomicFile.write("remote/app 1\nremote/base 1\nremote/bulk 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try Self.eventually {
            expectSuccess(try remote.client("mirror", "status", "remote")).stdout.contains("3 of 3 layers local")
        }, "the mirror completes on its own")
        #expect(try remote.mirrorObjects() == remote.servedObjects(of: ["app", "base", "bulk"]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mirror + "/layers").isEmpty, "no partial layer manifest is left")
        let log = try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.log", encoding: .utf8)
        #expect(log.contains("3 layers from http://127.0.0.1:") && log.contains(" are local: "), "\(log)")
        expectSuccess(try remote.client("umount", remote.mountpoint))
        expectSuccess(try remote.client("fsck"))

        remote.server.stop()
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("var/lib/bulk/data") == Self.bulk)
    }
}

extension LazyMountTests {
    /// Real Debian packages (dbus's closure and busybox) served by `strata repo serve`, mounted lazily
    /// in an empty home: dpkg configures them at mount with the files it opens fetched as it opens
    /// them, and busybox's web server answers from inside the VLFS while most of the layers' bytes are
    /// still on the server.
    @Test func aLazilyMountedDebianSystemServesItsFirstRequestBeforeItsLayersAreMirrored() throws {
        try DebianConfigurationTests.prepareHome()
        let scratch = try TemporaryDirectory("lazy-deb")
        let ldf = scratch.path + "/web.ldf", mountpoint = scratch.path + "/mnt", client = scratch.path + "/client-home"
        try AtomicFile.write("debian/dbus\ndebian/busybox\n", to: ldf)
        expectSuccess(try DebianConfigurationTests.strata("ldf", "resolve", ldf, "--write", "--fetch"))
        let layers = try String(contentsOfFile: ldf, encoding: .utf8).split(separator: "\n").filter { $0.contains("/") }.count
        let server = try RepositoryServer(.strata, serving: DebianConfigurationTests.home + "/debian", scratch: scratch.path)
        func strata(_ arguments: String...) throws -> Execution { try execute(strataExecutable, arguments, environment: ["STRATA_HOME": client]) }
        expectSuccess(try strata("repo", "add", "debian", server.url))
        try makeDirectories(mountpoint)
        let port = try freePort()
        expectSuccess(try strata("mount", ldf, mountpoint, "--name", "lazy-deb", "--fetch", "on-open"))
        // busybox's web server in the foreground, a child of the test (a daemon would inherit the
        // descriptor by which Foundation learns that the shell that started it exited).
        let httpd = Process()
        defer {
            if httpd.isRunning {
                kill(httpd.processIdentifier, SIGKILL)
                httpd.waitUntilExit()
            }
            _ = try? strata("umount", mountpoint)
        }
        func inside(_ command: String) throws -> String { try shell("chroot '\(mountpoint)' /bin/sh -c '\(command)'") }
        #expect(try inside("getent passwd messagebus").hasPrefix("messagebus:"), "dbus's postinst ran on lazily fetched files")
        let listed = try inside("dpkg-query -W -f \"\\${db:Status-Abbrev}\\n\"").split(separator: "\n")
        #expect(listed.count == layers && listed.allSatisfy { $0.hasPrefix("ii ") })

        httpd.executableURL = URL(fileURLWithPath: "/usr/sbin/chroot")
        httpd.arguments = [mountpoint, "/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:\(port)", "-h", "/usr/share/common-licenses"]
        httpd.standardOutput = FileHandle.nullDevice
        httpd.standardError = FileHandle.nullDevice
        try httpd.run()
        var page = ""
        for _ in 0..<50 where !page.contains("GNU GENERAL PUBLIC LICENSE") {
            page = (try? shell("curl -sf http://127.0.0.1:\(port)/GPL-3")) ?? ""
            if page.isEmpty { usleep(100_000) }
        }
        #expect(page.contains("GNU GENERAL PUBLIC LICENSE"))

        struct Report: Decodable { struct Layer: Decodable { let state: String; let bytes: UInt64 }; let layers: [Layer]; let objectBytes: UInt64 }
        let report = try JSONDecoder().decode(Report.self, from: Data(expectSuccess(try strata("mirror", "status", "debian", "--json")).stdout.utf8))
        let mounted = report.layers.filter { $0.state != "remote" }
        let total = mounted.reduce(0) { $0 + $1.bytes }
        #expect(mounted.count == layers && mounted.allSatisfy { $0.state == "partial" }, "every layer mounted, none whole")
        #expect(report.objectBytes < total / 2, "fetched \(report.objectBytes) of the layers' \(total) bytes")
    }
}
