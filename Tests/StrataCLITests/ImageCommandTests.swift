import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension Workspace {
    /// Writes files (path → contents) into `trees/LABEL` with every time set to one instant, so two
    /// trees differ only where the test makes them differ.
    func tree(_ label: String, _ files: [String: String]) throws -> String {
        for (path, contents) in files { try scratch.write("trees/\(label)/\(path)", contents) }
        let root = scratch.path + "/trees/" + label
        try shell("find '\(root)' -exec touch -h -d @1000000000 {} +")
        return root
    }

    /// Checks a tree in and returns the digest printed alone on the first line.
    @discardableResult
    func checkin(_ path: String, name: String) throws -> String {
        let output = expectSuccess(try strata("image", "checkin", path, "--name", name)).stdout
        return String(output.split(separator: "\n").first ?? "")
    }

    func json(_ arguments: String...) throws -> Any {
        let execution = expectSuccess(try strata(arguments + ["--json"]))
        return try JSONSerialization.jsonObject(with: Data(execution.stdout.utf8))
    }

    /// Runs the tool as uid and gid 1000, with no supplementary groups.
    func strataAsUser(_ arguments: String...) throws -> Execution {
        try execute("/usr/bin/setpriv", ["--reuid=1000", "--regid=1000", "--clear-groups", strataExecutable] + arguments, environment: ["STRATA_HOME": home])
    }
}

@Suite(.serialized) struct ImageCommandTests {
    @Test func checkinAndCheckoutAreIdentical() throws {
        let workspace = try Workspace()
        let source = workspace.scratch.path + "/source"
        try shell("""
            mkdir -p \(source)/etc \(source)/usr/bin \(source)/dev && cd \(source) && echo hello > etc/motd && printf 'x' > usr/bin/tool \
            && chmod 4755 usr/bin/tool && ln -s ../etc/motd usr/motd-link && ln etc/motd etc/motd-hardlink && mkfifo dev/pipe \
            && mknod dev/null c 1 3 && chown 1000:1000 etc/motd && setfattr -n user.note -v kept etc/motd && touch -d @1234567890.123456789 etc
            """)
        let digest = try workspace.checkin(source, name: "base")
        #expect(Digest(digest) != nil, "the image digest comes alone on the first line")
        let shown = try workspace.json("image", "show", "base") as! [String: Any]
        #expect((shown["version"] as! [String: Any])["digest"] as? String == digest)

        let out = workspace.scratch.path + "/out"
        expectSuccess(try workspace.strata("image", "checkout", "base", out))
        try expectIdentical(source, out, store: try ObjectStore(root: workspace.scratch.path + "/compare", create: true))
        expectSuccess(try workspace.strata("image", "checkout", digest, workspace.scratch.path + "/by-digest"))

        try shell("cd \(source) && tar --xattrs -cf \(workspace.scratch.path)/source.tar .")
        let fromTar = try workspace.checkin(workspace.scratch.path + "/source.tar", name: "tarred")
        #expect(Digest(fromTar) != nil)
        expectSuccess(try workspace.strata("image", "checkout", "tarred", workspace.scratch.path + "/tar-out"))
        #expect(try String(contentsOfFile: workspace.scratch.path + "/tar-out/etc/motd", encoding: .utf8) == "hello\n")
    }

    @Test func versionChainTagsAndDefault() throws {
        let workspace = try Workspace()
        let first = try workspace.checkin(try workspace.tree("v1", ["etc/release": "1"]), name: "web")
        let second = try workspace.checkin(try workspace.tree("v2", ["etc/release": "2"]), name: "web")
        let log = try workspace.json("image", "log", "web") as! [[String: Any]]
        #expect(log.map { $0["digest"] as! String } == [first, second])
        #expect(log.map { $0["isDefault"] as! Bool } == [false, true])
        #expect(log[1]["parent"] as? String == first)

        expectSuccess(try workspace.strata("image", "default", "web@1"))
        expectSuccess(try workspace.strata("image", "tag", "web@2", "candidate"))
        expectSuccess(try workspace.strata("image", "checkout", "web", workspace.scratch.path + "/default"))
        #expect(try String(contentsOfFile: workspace.scratch.path + "/default/etc/release", encoding: .utf8) == "1")
        expectSuccess(try workspace.strata("image", "checkout", "web@candidate", workspace.scratch.path + "/tagged"))
        #expect(try String(contentsOfFile: workspace.scratch.path + "/tagged/etc/release", encoding: .utf8) == "2")
        let list = try workspace.json("image", "list") as! [[String: Any]]
        #expect(list.map { $0["name"] as! String } == ["web"] && list[0]["defaultVersion"] as? Int == 1)
    }

    @Test func deleteKeepsRowsAndRefusesCheckout() throws {
        let workspace = try Workspace()
        try workspace.checkin(try workspace.tree("v1", ["a": "1"]), name: "db")
        try workspace.checkin(try workspace.tree("v2", ["a": "2"]), name: "db")
        expectSuccess(try workspace.strata("image", "delete", "db@2"))
        let log = try workspace.json("image", "log", "db") as! [[String: Any]]
        #expect(log.map { $0["state"] as! String } == ["active", "deleted"])
        let refused = try workspace.strata("image", "checkout", "db@2", workspace.scratch.path + "/out")
        #expect(refused.status != 0 && refused.stderr.contains("db@2") && refused.stderr.contains("deleted"))
        expectSuccess(try workspace.strata("image", "checkout", "db", workspace.scratch.path + "/out"))
    }

    @Test func accessControlHoldsForAnOrdinaryUser() throws {
        let workspace = try Workspace()
        let tree = try workspace.tree("app", ["srv/app": "app"])
        try shell("chown -R 1000:1000 '\(tree)'")
        try workspace.checkin(tree, name: "app")
        try shell("chmod -R a+rwX '\(workspace.scratch.path)'")
        let out = workspace.scratch.path + "/user-out"

        let checkout = try workspace.strataAsUser("image", "checkout", "app", out)
        #expect(checkout.status != 0 && checkout.stderr.contains("may not check out image 'app'"), "\(checkout.stderr)")
        let checkin = try workspace.strataAsUser("image", "checkin", tree, "--name", "app")
        #expect(checkin.status != 0 && checkin.stderr.contains("may not check in"))
        let delete = try workspace.strataAsUser("image", "delete", "app")
        #expect(delete.status != 0 && delete.stderr.contains("only its owner"))
        let grant = try workspace.strataAsUser("image", "grant", "app", "1000", "--checkout")
        #expect(grant.status != 0)

        expectSuccess(try workspace.strata("image", "grant", "app", "1000", "--checkout"))
        expectSuccess(try workspace.strataAsUser("image", "checkout", "app", out))
        #expect(try String(contentsOfFile: out + "/srv/app", encoding: .utf8) == "app")
        #expect(try workspace.strataAsUser("image", "checkin", tree, "--name", "app").status != 0, "checkout rights are not checkin rights")

        expectSuccess(try workspace.strata("image", "grant", "app", "everyone", "--checkin"))
        expectSuccess(try workspace.strataAsUser("image", "checkin", tree, "--name", "app"))
        let log = try workspace.json("image", "log", "app") as! [[String: Any]]
        #expect(log.map { ($0["creator"] as! [String: Any])["uid"] as! Int } == [0, 1000])

        expectSuccess(try workspace.strataAsUser("image", "checkin", tree, "--name", "mine"))
        let owned = try workspace.json("image", "show", "mine") as! [String: Any]
        #expect((owned["owner"] as! [String: Any])["uid"] as? Int == 1000, "whoever creates a named image owns it")
    }

    @Test func diffDeltaAndApply() throws {
        let workspace = try Workspace()
        let files = ["etc/motd": "hello", "etc/hosts": "127.0.0.1 localhost", "usr/share/doc/readme": "docs", "var/cache/old": "old",
                     "var/cache/keep": "kept"]
        try workspace.checkin(try workspace.tree("a", files), name: "img")
        var changed = files
        changed["etc/motd"] = "changed"
        changed["etc/new.conf"] = "new"
        changed["var/cache/old"] = nil
        let b = try workspace.tree("b", changed)
        try shell("chmod 600 '\(b)/etc/hosts' && touch -h -d @1000000000 '\(b)/etc/hosts'")
        let target = try workspace.checkin(b, name: "img")

        let changes = try workspace.json("image", "diff", "img@1", "img@2") as! [[String: Any]]
        #expect(changes.map { "\($0["change"]!) \($0["path"]!)" } == ["metadata /etc/hosts", "modified /etc/motd", "added /etc/new.conf", "deleted /var/cache/old"])

        let checkout = workspace.scratch.path + "/checkout"
        expectSuccess(try workspace.strata("image", "checkout", "img@1", checkout))
        let delta = workspace.scratch.path + "/img.delta"
        expectSuccess(try workspace.strata("image", "delta", "img@1", "img@2", "-o", delta))
        let damaged = workspace.scratch.path + "/damaged.delta"
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: delta)))
        bytes[bytes.count - 40] ^= 0xff
        try AtomicFile.write(bytes, to: damaged)
        let refused = try workspace.strata("image", "apply", damaged, checkout)
        #expect(refused.status != 0 && refused.stderr.contains("damaged"))
        #expect(try String(contentsOfFile: checkout + "/etc/motd", encoding: .utf8) == "hello", "a refused delta changes nothing")

        let applied = expectSuccess(try workspace.strata("image", "apply", delta, checkout))
        #expect(applied.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == target)
        let expected = workspace.scratch.path + "/expected"
        expectSuccess(try workspace.strata("image", "checkout", "img@2", expected))
        try expectIdentical(checkout, expected, store: try ObjectStore(root: workspace.scratch.path + "/compare", create: true))
    }

    @Test func searchAndScan() throws {
        let workspace = try Workspace()
        let tree = try workspace.tree("a", ["usr/bin/openssl": "openssl 3", "etc/motd": "hi"])
        try shell("chmod 4755 '\(tree)/usr/bin/openssl' && chmod 666 '\(tree)/etc/motd'")
        try workspace.checkin(tree, name: "one")
        try workspace.checkin(try workspace.tree("b", ["etc/motd": "hi"]), name: "two")

        let hits = try workspace.json("search", "--path", "*/openssl") as! [[String: Any]]
        #expect(hits.map { "\($0["image"]!) \($0["path"]!)" } == ["one@1 /usr/bin/openssl"])
        let digest = SHA256.hash(Array("hi".utf8)).description
        let byDigest = try workspace.json("search", "--digest", digest) as! [[String: Any]]
        #expect(byDigest.map { $0["image"] as! String } == ["one@1", "two@1"])

        let findings = try workspace.json("scan", "one") as! [[String: Any]]
        #expect(findings.map { "\($0["severity"]!) \($0["rule"]!) \($0["path"]!)" } == ["high world-writable /etc/motd", "high setuid /usr/bin/openssl"])
        let denyList = workspace.scratch.path + "/deny"
        try AtomicFile.write("\(digest) test content\n", to: denyList)
        let failing = try workspace.strata("scan", "two", "--deny", denyList, "--fail-on", "critical")
        #expect(failing.status != 0 && failing.stdout.contains("critical\tdenied-content\t/etc/motd"))

        expectSuccess(try workspace.strata("layer", "import", "main", tree, "--name", "tools", "--version", "1.0"))
        let layerFindings = try workspace.json("scan", "main/tools=1.0") as! [[String: Any]]
        #expect(layerFindings.count == 2, "layers scan like images")
    }

    @Test func gcFsckPushAndPull() throws {
        let workspace = try Workspace()
        try workspace.checkin(try workspace.tree("keep", ["a": "kept"]), name: "keep")
        try workspace.checkin(try workspace.tree("drop", ["b": "dropped"]), name: "drop")
        expectSuccess(try workspace.strata("layer", "import", "main", try workspace.tree("layer", ["l": "layer"]), "--name", "lay", "--version", "1"))
        let stray = try ObjectStore(root: workspace.repository).put(Array("stray".utf8))
        expectSuccess(try workspace.strata("image", "delete", "drop"))

        let dry = try workspace.json("gc", "--dry-run") as! [[String: Any]]
        let freed = dry.map { Set($0["freed"] as! [String]) }
        #expect(freed[0].contains(SHA256.hash(Array("dropped".utf8)).description) && !freed[0].contains(SHA256.hash(Array("kept".utf8)).description))
        #expect(freed[1] == [stray.description], "only the stray object in the repository")
        expectSuccess(try workspace.strata("gc"))
        #expect(!(try ObjectStore(root: workspace.repository).has(stray)))
        expectSuccess(try workspace.strata("image", "checkout", "keep", workspace.scratch.path + "/keep"))
        expectSuccess(try workspace.strata("layer", "checkout", "main", "lay", workspace.scratch.path + "/layer-out"))
        expectSuccess(try workspace.strata("fsck"))

        // Push to another home copies only what it lacks, and records the image there.
        let other = workspace.scratch.path + "/other-home"
        let pushed = expectSuccess(try workspace.strata("push", "keep", other)).stdout
        #expect(pushed.contains("keep@1") && pushed.contains("0 already there"))
        try workspace.checkin(try workspace.tree("keep2", ["a": "kept", "c": "more"]), name: "keep")
        let again = expectSuccess(try workspace.strata("push", "keep", other)).stdout
        #expect(again.contains("copied 3 objects"), "image manifest, root tree and one new file: \(again)")
        let pulled = expectSuccess(try workspace.strata("pull", other, "keep@2", "--home", workspace.scratch.path + "/third-home")).stdout
        #expect(pulled.contains("keep@1"))
        let other2 = workspace.scratch.path + "/repo2"
        expectSuccess(try workspace.strata("repo", "init", other2))
        expectSuccess(try workspace.strata("push", "--layer", "lay=1", "main", other2))
        expectSuccess(try workspace.strata("layer", "checkout", other2, "lay", workspace.scratch.path + "/layer-copy"))

        // fsck names the image whose objects are gone.
        let blob = try ObjectStore(root: workspace.home + "/store").path(of: SHA256.hash(Array("more".utf8)))
        try removeTree(blob)
        let fsck = try workspace.strata("fsck")
        #expect(fsck.status != 0 && fsck.stdout.contains("image keep@2"))
    }

    @Test func mountServesAnImageReadOnly() throws {
        let workspace = try Workspace()
        try workspace.checkin(try workspace.tree("a", ["etc/motd": "from the store"]), name: "web")
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        expectSuccess(try workspace.strata("image", "mount", "web", mountpoint))
        defer { _ = try? workspace.strata("umount", mountpoint) }
        #expect(try String(contentsOfFile: mountpoint + "/etc/motd", encoding: .utf8) == "from the store")
        let fd = open(mountpoint + "/etc/motd", O_WRONLY)
        #expect(fd < 0 && errno == EROFS)
        #expect(mkdir(mountpoint + "/new", 0o755) != 0 && errno == EROFS)
        let held = try FileManager.default.contentsOfDirectory(atPath: workspace.home + "/mounts").filter { Int($0) != nil }
        #expect(held.count == 1, "the daemon records the image it serves, for gc")
        expectSuccess(try workspace.strata("umount", mountpoint))
    }

    /// An image mount is for inspection: nothing in it runs setuid or opens a device, and only users the
    /// catalog lets check the image out can read it.
    @Test func imageMountIsForInspectionByThoseTheAccessListNames() throws {
        let workspace = try Workspace()
        try workspace.checkin(try workspace.tree("a", ["etc/motd": "for root"]), name: "web")
        chmod(workspace.scratch.path, 0o755)
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
        expectSuccess(try workspace.strata("image", "mount", "web", mountpoint))
        defer { _ = try? workspace.strata("umount", mountpoint) }
        let options = try mountOptions(mountpoint)
        #expect(["ro", "nosuid", "nodev"].allSatisfy(options.contains), "\(options)")
        #expect(try String(contentsOfFile: mountpoint + "/etc/motd", encoding: .utf8) == "for root")
        #expect(throws: StoreError.self, "the image is not shared: another user cannot read it") {
            try shell("\(nobody) cat '\(mountpoint)/etc/motd' 2>/dev/null")
        }
        expectSuccess(try workspace.strata("umount", mountpoint))

        expectSuccess(try workspace.strata("image", "grant", "web", "everyone", "--checkout"))
        expectSuccess(try workspace.strata("image", "mount", "web", mountpoint))
        #expect(try shell("\(nobody) cat '\(mountpoint)/etc/motd'") == "for root")
    }
}
