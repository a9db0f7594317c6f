import Foundation
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
        // Listing and stat need only the trees.
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mountpoint + "/var/lib/bulk") == ["data"])
        #expect(try FileManager.default.attributesOfItem(atPath: remote.mountpoint + "/var/lib/bulk/data")[.size] as? Int == Self.bulk.utf8.count)
        #expect(try !remote.mirrorObjects().contains(Self.bulkBlob))

        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try remote.mirrorObjects().contains(Self.appBlob), "the opened file is kept in the mirror")
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
        try AtomicFile.write("remote/app 1\nremote/base 1\n", to: remote.ldf)
        let served = try remote.servedObjectPath(Self.appBlob)
        chmod(served, 0o644)
        try AtomicFile.write("app ONE\n", to: served)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "on-open"))
        let pid = try #require(Int32(try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))

        let fd = open(remote.mountpoint + "/usr/bin/app", O_RDONLY)
        let openError = errno
        if fd >= 0 { close(fd) }
        #expect(fd < 0 && openError == EIO, "a file whose content does not verify cannot be opened (errno \(openError))")
        #expect(try remote.read("etc/os-release") == "strata\n", "other files still open")
        #expect(kill(pid, 0) == 0, "the daemon is alive")
        let log = try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.log", encoding: .utf8)
        #expect(log.contains("layer app 1: fetching \(Self.appBlob) failed") && log.contains("is corrupt"), "\(log)")
        #expect(try !remote.mirrorObjects().contains(Self.appBlob), "nothing bad is stored")

        // The next open tries again.
        try AtomicFile.write("app one\n", to: served)
        #expect(try remote.read("usr/bin/app") == "app one\n")
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
