import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The files a lying server lies about: those whose path starts with the prefix set, if any.
final class Lies: Sendable {
    let about = Mutex<String?>(nil)
}

/// Serves a repository directory faithfully, except that it announces the files `lies` names as
/// `Content-Length: -1`.
func lyingServer(serving repository: String, lies: Lies) throws -> ScriptedHTTPServer {
    try ScriptedHTTPServer { request in
        if let prefix = lies.about.withLock({ $0 }), request.path.hasPrefix(prefix) {
            return ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", then: .close)
        }
        return .file(repository + "/" + request.path)
    }
}

/// A served repository that lies to a home's mirror of it, named `hostile` there (beside `remote`,
/// the same repository served by `strata repo serve`).
@Suite(.serialized) struct LyingServerTests {
    @Test func aMirrorKeepsItsIndexAndObjectsWhenItsServerLies() throws {
        let remote = try RemoteWorkspace(.strata, label: "remote-lies")
        let lies = Lies()
        let server = try lyingServer(serving: remote.workspace.repository, lies: lies)
        expectSuccess(try remote.client("repo", "add", "hostile", server.url))
        let mirror = remote.clientHome + "/mirrors/hostile"
        try AtomicFile.write("hostile/app 1\nhostile/base 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        expectSuccess(try remote.client("umount", remote.mountpoint))
        let fetched = Set(try ObjectStore(root: mirror).allObjects())
        let listed = expectSuccess(try remote.client("layer", "list", "hostile")).stdout
        try remote.importLayer("app", "2", depends: "base", files: ["usr/bin/app": "app two\n"])

        lies.about.withLock { $0 = "index.sqlite" }
        let update = try remote.client("repo", "update", "hostile")
        #expect(update.status != 0 && update.stderr.contains("\(server.url)/index.sqlite: Invalid Content-Length"), "\(update.stderr)")
        #expect(expectSuccess(try remote.client("layer", "list", "hostile")).stdout == listed, "the mirror keeps its index")
        #expect(try !FileManager.default.contentsOfDirectory(atPath: mirror).contains { $0.contains("download") })

        lies.about.withLock { $0 = "objects/" }
        expectSuccess(try remote.client("repo", "update", "hostile"))
        try AtomicFile.write("hostile/app 2\nhostile/base 1\n", to: remote.ldf)
        let mount = try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount")
        #expect(mount.status != 0 && mount.stderr.contains("\(server.url)/objects/sha256/") && mount.stderr.contains("Invalid Content-Length"),
                "\(mount.stderr)")
        #expect(try Set(ObjectStore(root: mirror).allObjects()).isSuperset(of: fetched), "the objects fetched before stay")

        // What the mirror holds still mounts, without asking the server for anything.
        try AtomicFile.write("hostile/app 1\nhostile/base 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        expectSuccess(try remote.client("fsck"))
    }

    @Test func updateOfAMountedVLFSFromALyingServerFailsAndTheDaemonLivesOn() throws {
        let remote = try RemoteWorkspace(.strata, label: "remote-upd")
        let lies = Lies()
        let server = try lyingServer(serving: remote.workspace.repository, lies: lies)
        expectSuccess(try remote.client("repo", "add", "hostile", server.url))
        try AtomicFile.write("hostile/app 1\nhostile/base 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        let pid = try #require(Int32(try String(contentsOfFile: remote.clientHome + "/vlfs/appliance/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        try remote.importLayer("app", "2", depends: "base", files: ["usr/bin/app": "app two\n"])
        expectSuccess(try remote.client("repo", "update", "hostile"))

        // The daemon fetches app 2's objects (on `strata update`, and on its own when it sees the LDF change).
        lies.about.withLock { $0 = "objects/" }
        try AtomicFile.write("hostile/app 2\nhostile/base 1\n", to: remote.ldf)
        let update = try remote.client("update", "appliance")
        #expect(update.status != 0 && update.stderr.contains("\(server.url)/objects/sha256/") && update.stderr.contains("Invalid Content-Length"),
                "\(update.stderr)")
        #expect(kill(pid, 0) == 0, "the daemon is alive")
        #expect(try remote.read("usr/bin/app") == "app one\n", "and its mount answers, as before the update")

        lies.about.withLock { $0 = nil }
        expectSuccess(try remote.client("update", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app two\n")
    }
}
