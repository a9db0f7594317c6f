import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A repository `main` served over HTTP, and a second Strata home that names it by URL as `remote`
/// and mounts from it.
final class RemoteWorkspace: Sendable {
    let workspace: Workspace
    let server: RepositoryServer
    var clientHome: String { workspace.scratch.path + "/client-home" }
    var mirror: String { clientHome + "/mirrors/remote" }
    var ldf: String { workspace.scratch.path + "/appliance.ldf" }
    var mountpoint: String { workspace.scratch.path + "/mnt" }

    static let layers: [(name: String, version: String, depends: String?, files: [String: String])] = [
        ("app", "1", "base", ["usr/bin/app": "app one\n", "etc/app.conf": "conf one\n"]),
        ("base", "1", nil, ["etc/os-release": "strata\n"]),
        ("bulk", "1", nil, ["var/lib/bulk/data": String(repeating: "0123456789abcdef", count: 1 << 19)]),
    ]

    /// The CA file the client trusts, when the server speaks https.
    let trusted: String?

    /// - Parameters:
    ///   - label: short, because the VLFS's control socket path must fit in a socket address.
    ///   - add: whether the client home names the served repository `remote` now (signed ones are added later).
    ///   - tls: whether nginx serves https (and HTTP/2), with a certificate of a CA made for the test that the client trusts.
    init(_ kind: ServerKind, label: String, rateLimit: Int = 0, add: Bool = true, tls: Bool = false) throws {
        workspace = try Workspace(label)
        let certificate = tls ? try TestCertificate(in: workspace.scratch.path) : nil
        trusted = certificate?.authority
        server = try RepositoryServer(kind, serving: workspace.repository, scratch: workspace.scratch.path, rateLimit: rateLimit, tls: certificate)
        for layer in Self.layers {
            try importLayer(layer.name, layer.version, depends: layer.depends, files: layer.files)
        }
        try makeDirectories(mountpoint)
        if add { expectSuccess(try client("repo", "add", "remote", server.url)) }
    }

    deinit {
        if isMounted { _ = try? client("umount", mountpoint) }
        if isMounted { umount2(mountpoint, Int32(MNT_DETACH)) }
    }

    func importLayer(_ name: String, _ version: String, depends: String? = nil, files: [String: String]) throws {
        let tree = "trees/\(name)_\(version)"
        for (path, contents) in files { try workspace.scratch.write("\(tree)/\(path)", contents) }
        expectSuccess(try workspace.strata(["layer", "import", "main", workspace.scratch.path + "/" + tree, "--name", name, "--version", version]
            + (depends.map { ["--depends", $0] } ?? [])))
    }

    func client(_ arguments: String...) throws -> Execution {
        try execute(strataExecutable, arguments, environment: ["STRATA_HOME": clientHome].merging(trusted.map { ["CURL_CA_BUNDLE": $0] } ?? [:]) { $1 })
    }

    var isMounted: Bool {
        MountTable.isMounted(mountpoint, type: "fuse.strata")
    }

    func read(_ relative: String) throws -> String { try String(contentsOfFile: mountpoint + "/" + relative, encoding: .utf8) }

    /// The objects the mirror holds.
    func mirrorObjects() throws -> Set<Digest> { Set(try ObjectStore(root: mirror).allObjects()) }

    /// The objects of the served repository that the named layers reach.
    func servedObjects(of layers: [String]) throws -> Set<Digest> {
        let repository = try Repository(at: workspace.repository)
        let roots = try layers.flatMap { name in try #require(try repository.find(name)).roots }
        return Reachability(store: repository.store, roots: roots).reached
    }

    func servedObjectPath(_ digest: Digest) throws -> String {
        try Repository(at: workspace.repository).store.path(of: digest)
    }
}

@Suite(.serialized) struct RemoteRepositoryTests {
    @Test func pullOfALayerFromAServedRepositoryCopiesOnlyWhatIsMissing() throws {
        let remote = try RemoteWorkspace(.strata, label: "remote-pull")
        let local = remote.workspace.scratch.path + "/local"
        expectSuccess(try remote.client("repo", "init", local))
        let first = expectSuccess(try remote.client("pull", "--layer", "app", "remote", local)).stdout
        #expect(first.contains("app 1 sha256:"))
        let copied = try Repository(at: local)
        #expect(Set(try copied.store.allObjects()) == (try remote.servedObjects(of: ["app"])))
        #expect(try copied.find("app")?.version == "1")
        // Pulling again copies nothing.
        #expect(expectSuccess(try remote.client("pull", "--layer", "app", "remote", local)).stdout.contains("copied 0 objects"))
        expectSuccess(try remote.client("fsck", local))
    }

    @Test(arguments: ServerKind.allCases) func resolveAndMountFromAServedRepositoryFetchingOnlyWhatIsNeeded(_ kind: ServerKind) throws {
        let remote = try RemoteWorkspace(kind, label: "remote-mount")
        let listed = expectSuccess(try remote.client("layer", "list", "remote")).stdout
        #expect(listed == expectSuccess(try remote.workspace.strata("layer", "list", "main")).stdout, "the mirror's index is the served one")
        #expect(try remote.mirrorObjects().isEmpty, "adding a repository fetches its index, no objects")

        try AtomicFile.write("remote/app\n", to: remote.ldf)
        expectSuccess(try remote.client("ldf", "resolve", remote.ldf, "--write"))
        #expect(try String(contentsOfFile: remote.ldf, encoding: .utf8) == "remote/app 1\n\nremote/base 1\n")

        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try remote.read("etc/os-release") == "strata\n")
        expectSuccess(try remote.client("umount", remote.mountpoint))
        #expect(try remote.mirrorObjects() == remote.servedObjects(of: ["app", "base"]), "exactly the objects of the mounted layers were fetched")
        #expect(try !remote.mirrorObjects().isSuperset(of: remote.servedObjects(of: ["bulk"])))
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mirror + "/partial").isEmpty)
        expectSuccess(try remote.client("fsck"))

        // New layers appear after 'repo update'; an unchanged index is not fetched again.
        try remote.importLayer("app", "2", depends: "base", files: ["usr/bin/app": "app two\n"])
        #expect(expectSuccess(try remote.client("repo", "update")).stdout == "remote\tupdated\t4 layers\n")
        #expect(expectSuccess(try remote.client("layer", "list", "remote")).stdout.contains("app\t2\t"))
        #expect(expectSuccess(try remote.client("repo", "update", "remote")).stdout == "remote\tunchanged\t4 layers\n")
        let upgraded = expectSuccess(try remote.client("ldf", "upgrade", remote.ldf)).stdout
        #expect(upgraded.contains("remote/app 1 -> 2"), "\(upgraded)")
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app two\n")
    }

    @Test(arguments: ServerKind.allCases) func corruptObjectsAreRefusedAndNothingBadIsStored(_ kind: ServerKind) throws {
        let remote = try RemoteWorkspace(kind, label: "remote-corrupt")
        try AtomicFile.write("remote/app 1\nremote/base 1\n", to: remote.ldf)
        let blob = SHA256.hash(Array("app one\n".utf8))
        let served = try remote.servedObjectPath(blob)
        chmod(served, 0o644)

        // Same length, other bytes: caught by the digest.
        try AtomicFile.write("app ONE\n", to: served)
        var mount = try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount")
        #expect(mount.status != 0)
        #expect(mount.stderr.contains("object \(blob)") && mount.stderr.contains("is corrupt"), "\(mount.stderr)")
        #expect(try !remote.mirrorObjects().contains(blob))
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.mirror + "/partial").isEmpty)
        let app = try #require(try Repository(at: remote.workspace.repository).find("app")).digest
        #expect(try !remote.mirrorObjects().contains(app), "no layer manifest is stored before all its objects are")

        // Another length: refused before it is read.
        try AtomicFile.write("a much longer trojan\n", to: served)
        mount = try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount")
        #expect(mount.stderr.contains("the server sends 21 bytes, but the layer's tree says 8"), "\(mount.stderr)")
        #expect(try !remote.mirrorObjects().contains(blob))
        expectSuccess(try remote.client("fsck"))

        try AtomicFile.write("app one\n", to: served)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
    }

    @Test(arguments: ServerKind.allCases) func anInterruptedFetchResumesWhereItStopped(_ kind: ServerKind) throws {
        let remote = try RemoteWorkspace(kind, label: "remote-resume", rateLimit: 2_000_000)
        try AtomicFile.write("remote/bulk 1\n", to: remote.ldf)
        let data = try #require(RemoteWorkspace.layers.last?.files["var/lib/bulk/data"])
        let blob = SHA256.hash(Array(data.utf8))
        let partial = "\(remote.mirror)/partial/\(blob.hex)"

        let first = Process()
        first.executableURL = URL(fileURLWithPath: strataExecutable)
        first.arguments = ["mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--home", remote.clientHome, "--fetch", "before-mount"]
        first.standardError = FileHandle.nullDevice
        try first.run()
        var size: Int64 = 0
        for _ in 0..<400 where size < 1_000_000 {
            usleep(25_000)
            size = (try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int64) ?? 0
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        #expect(size >= 1_000_000 && size < Int64(data.utf8.count), "killed mid-way, with \(size) bytes fetched")
        #expect(!remote.isMounted)

        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        #expect(try remote.read("var/lib/bulk/data") == data)
        let objectRequests = remote.server.requests().filter { $0.contains(blob.hex.dropFirst(2)) }
        #expect(objectRequests.count == 2 && objectRequests.last!.contains(" 206"), "resumed with a range request: \(objectRequests)")
        #expect(!FileManager.default.fileExists(atPath: partial))
    }

    @Test func repoServeAnswersRangesAndHeadAndRefusesTraversal() throws {
        let remote = try RemoteWorkspace(.strata, label: "remote-serve")
        let marker = "\(remote.workspace.repository)/strata-repository"
        let markerText = try String(contentsOfFile: marker, encoding: .utf8)
        #expect(symlink("/etc", "\(remote.workspace.repository)/escape") == 0)
        func curl(_ arguments: String...) throws -> (status: String, body: String) {
            let result = try execute("/usr/bin/curl", ["-s", "-o", "-", "-w", "\n%{http_code}"] + arguments)
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last!), lines.dropLast().joined(separator: "\n"))
        }
        let base = remote.server.url
        #expect(try curl("\(base)strata-repository") == ("200", markerText))
        #expect(try curl("-r", "3-6", "\(base)strata-repository") == ("206", String(markerText.dropFirst(3).prefix(4))))
        #expect(try curl("-r", "-4", "\(base)strata-repository") == ("206", String(markerText.suffix(4))))
        #expect(try curl("-r", "5-", "\(base)strata-repository") == ("206", String(markerText.dropFirst(5))))
        #expect(try curl("-r", "100-", "\(base)strata-repository").status == "416")
        let head = try execute("/usr/bin/curl", ["-s", "-I", "\(base)strata-repository"]).stdout
        #expect(head.hasPrefix("HTTP/1.1 200") && head.contains("Content-Length: \(markerText.utf8.count)\r\n"), "\(head)")
        let partial = try execute("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "-r", "3-6", "\(base)strata-repository"]).stdout
        #expect(partial.contains("Content-Range: bytes 3-6/\(markerText.utf8.count)\r\n") && partial.contains("Content-Length: 4\r\n"))

        #expect(try curl("--path-as-is", "\(base)../../etc/passwd").status == "400")
        #expect(try curl("--path-as-is", "\(base)objects/%2e%2e/%2e%2e/etc/passwd").status == "400")
        #expect(try curl("\(base)escape/passwd").status == "404", "a symbolic link out of the repository is not followed")
        #expect(try curl("\(base)objects/").status == "404", "no listings")
        #expect(try curl("\(base)no-such-file").status == "404")
        #expect(try curl("-X", "DELETE", "\(base)strata-repository").status == "405")
        #expect(FileManager.default.fileExists(atPath: marker))

        let notRepository = try remote.client("repo", "add", "other", base + "objects")
        #expect(notRepository.status != 0 && notRepository.stderr.contains("\(base)objects/strata-repository"), "\(notRepository.stderr)")
        let unreachable = try remote.client("repo", "add", "other", "http://127.0.0.1:\(try freePort())")
        #expect(unreachable.status != 0 && unreachable.stderr.contains("Failed to connect to 127.0.0.1 port"), "\(unreachable.stderr)")
        #expect(!expectSuccess(try remote.client("repo", "list")).stdout.contains("other"))
    }
}

extension RemoteRepositoryTests {
    /// `mirror status` tells which layers a mounted LDF brought into the mirror, and refuses a name that
    /// is no mirror.
    @Test func mirrorStatusShowsWhatIsLocal() throws {
        let remote = try RemoteWorkspace(.strata, label: "mirror-status")
        let before = expectSuccess(try remote.client("mirror", "status", "remote")).stdout
        #expect(before.contains("app 1 remote") && before.contains("base 1 remote") && before.contains("0 of 3 layers local"), "\(before)")
        try AtomicFile.write("remote/app 1\nremote/base 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "before-mount"))
        expectSuccess(try remote.client("umount", remote.mountpoint))
        let after = expectSuccess(try remote.client("mirror", "status", "remote", "--json")).stdout
        struct Report: Decodable { struct Layer: Decodable { let name: String; let state: String }; let layers: [Layer]; let objects: Int }
        let report = try JSONDecoder().decode(Report.self, from: Data(after.utf8))
        #expect(Dictionary(uniqueKeysWithValues: report.layers.map { ($0.name, $0.state) }) == ["app": "local", "base": "local", "bulk": "remote"])
        #expect(report.objects == (try remote.mirrorObjects()).count)
        let local = try remote.client("mirror", "status", remote.workspace.repository)
        #expect(local.status != 0 && local.stderr.contains("'\(remote.workspace.repository)' is not a served repository"), "\(local.stderr)")
    }
}
