import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing
import VLFS
#if canImport(Glibc)
import Glibc
#endif

@Suite struct UnionTests {
    @Test func topmostWinsAndDirectoriesMerge() throws {
        let fixture = try UnionFixture()
        try fixture.layer("alpha", "1", ["etc/alpha.conf": "a", "usr/bin/tool": "alpha tool"])
        try fixture.layer("beta", "1", ["etc/beta.conf": "b", "usr/share/doc/beta/README": "beta"])
        let union = try fixture.union(try fixture.ldf("t", ["main/alpha 1", "main/beta 1"]))
        #expect(try union.names("etc") == ["alpha.conf", "beta.conf"])
        #expect(try union.names("usr") == ["bin", "share"])
        #expect(try union.contents("usr/bin/tool") == "alpha tool")
        #expect(try union.extendedAttribute(try union.inode("etc/beta.conf"), name: "user.strata.layer") == Array("beta 1".utf8))
        // The private layer is on top.
        try union.write("etc/beta.conf", "mine")
        #expect(try union.contents("etc/beta.conf") == "mine")
        #expect(try union.extendedAttribute(try union.inode("etc/beta.conf"), name: "user.strata.layer") == Array("private".utf8))
    }

    @Test func overlappingSoftwareLayersAreRefusedUnlessIdenticalOrReplaced() throws {
        let fixture = try UnionFixture()
        try fixture.layer("one", "1", ["usr/bin/tool": "one", "usr/share/same": "same"])
        try fixture.layer("two", "1", ["usr/bin/tool": "two", "usr/share/same": "same"])
        try fixture.layer("three", "1", ["usr/bin/tool": "three"], replaces: "one (<< 2)")
        #expect {
            try fixture.union(try fixture.ldf("bad", ["main/one 1", "main/two 1"]))
        } throws: { error in
            let text = "\(error)"
            return text.contains("one 1") && text.contains("two 1") && text.contains("/usr/bin/tool") && !text.contains("/usr/share/same")
        }
        let union = try fixture.union(try fixture.ldf("good", ["main/one 1", "main/three 1"]))
        #expect(try union.contents("usr/bin/tool") == "three")
    }

    /// The check descends only where layers meet, and finds what meets at any depth.
    @Test func overlapsAreFoundAtAnyDepth() throws {
        let fixture = try UnionFixture()
        try fixture.layer("four", "1", ["opt/a/b/c/d": "x", "usr/bin/four": "4"])
        try fixture.layer("five", "1", ["opt/a/b/c/d": "y"])
        try fixture.layer("six", "1", ["opt/a/b/c/d/e": "z"])
        try fixture.layer("seven", "1", ["opt/a/b/c/d": "x", "srv/seven": "7"])
        for (other, shared) in [("five", "/opt/a/b/c/d"), ("six", "/opt/a/b/c/d")] {
            #expect {
                try fixture.union(try fixture.ldf("bad-\(other)", ["main/four 1", "main/\(other) 1"]))
            } throws: { error in
                "\(error)".contains("four 1 and \(other) 1 both provide \(shared)") || "\(error)".contains("\(other) 1 and four 1 both provide \(shared)")
            }
        }
        // Identical subtrees in two layers, and a third beside them.
        let union = try fixture.union(try fixture.ldf("good", ["main/four 1", "main/seven 1"]))
        #expect(try union.contents("opt/a/b/c/d") == "x")
        #expect(throws: (any Error).self) { try fixture.union(try fixture.ldf("three", ["main/four 1", "main/seven 1", "main/five 1"])) }
    }

    /// Each layer's path list (named in the index) decides the check: layers that meet only in
    /// directories need none of those directories' trees, and an overlap is still named by path.
    @Test func pathListsDecideTheOverlapCheckWithoutTheTrees() throws {
        let fixture = try UnionFixture()
        let five = try fixture.layer("five", "1", ["usr/share/doc/five/README": "5", "usr/bin/same": "s"])
        let seven = try fixture.layer("seven", "1", ["usr/share/doc/seven/README": "7", "usr/bin/same": "s"])
        try fixture.layer("eight", "1", ["usr/share/doc/x/README": "8"])
        try fixture.layer("nine", "1", ["usr/share/doc/x/README": "9"])
        // The trees the check would read where five and seven meet: gone (a lazy mirror lacks them).
        for record in [five, seven] {
            let root = try fixture.repository.layerManifest(record).filesystem.digest!
            let usr = try #require(try fixture.repository.store.tree(root).entry(named: "usr")?.digest)
            let share = try #require(try fixture.repository.store.tree(usr).entry(named: "share")?.digest)
            for tree in [usr, share] { try fixture.repository.store.remove(tree) }
        }
        _ = try fixture.stack(try fixture.ldf("apart", ["main/five 1", "main/seven 1", "main/eight 1"]))
        #expect {
            try fixture.stack(try fixture.ldf("overlap", ["main/eight 1", "main/nine 1"]))
        } throws: { "\($0)".contains("eight 1 and nine 1 both provide /usr/share/doc/x/README") }
    }

    @Test func deletingASharedFileWhitesItOutUntilItsLayerIsReplaced() throws {
        let fixture = try UnionFixture()
        try fixture.layer("app", "1", ["usr/bin/app": "v1", "etc/app.conf": "c1"])
        try fixture.layer("app", "2", ["usr/bin/app": "v2", "etc/app.conf": "c2"])
        let ldf = try fixture.ldf("t", ["main/app 1"])
        let union = try fixture.union(ldf)
        let (parent, name) = try union.parentAndName("etc/app.conf")
        try union.unlink(parent: parent, name: name)
        #expect(!union.exists("etc/app.conf"))
        // The whiteout survives a restart of the daemon (a new Union over the same state).
        #expect(!(try fixture.union(ldf)).exists("etc/app.conf"))
        // Upgrading the layer brings its files back: the new instance has its own, empty whiteout layer.
        try AtomicFile.write("main/app 2\n", to: ldf)
        let changed = try union.replaceStack(try fixture.stack(ldf))
        #expect(changed.contains("etc/app.conf") && changed.contains("usr/bin/app"))
        #expect(try union.contents("etc/app.conf") == "c2")
    }

    @Test func copyUpKeepsMetadataAndInodeNumber() throws {
        let fixture = try UnionFixture()
        let tree = fixture.scratch.path + "/trees/meta_1"
        try fixture.scratch.write("trees/meta_1/usr/bin/prog", "#!/bin/sh\n")
        try shell("chown 7:8 '\(tree)/usr/bin/prog' && chmod 4711 '\(tree)/usr/bin/prog' && setfattr -n user.origin -v layer '\(tree)/usr/bin/prog' && touch -d '2001-02-03 04:05:06.789' '\(tree)/usr/bin/prog'")
        _ = try fixture.repository.importLayer(from: tree, metadata: try LayerMetadata(parsing: "Layer: meta\nVersion: 1\n", file: "test"))
        let union = try fixture.union(try fixture.ldf("t", ["main/meta 1"]))
        let inode = try union.inode("usr/bin/prog")
        let before = try union.attributes(of: inode)
        try union.write("usr/bin/prog", "echo more\n", append: true)
        let after = try union.attributes(of: inode)
        #expect(after.st_ino == before.st_ino)
        #expect(after.st_mode == before.st_mode && after.st_uid == 7 && after.st_gid == 8)
        #expect(try union.contents("usr/bin/prog") == "#!/bin/sh\necho more\n")
        #expect(try union.extendedAttribute(inode, name: "user.origin") == Array("layer".utf8))
        var st = stat()
        #expect(lstat(fixture.home.path + "/vlfs/test/private/usr/bin/prog", &st) == 0 && st.st_mode & 0o7777 == 0o4711)
    }

    @Test func aCopyMadeForAChangeOfModeKeepsBytesTimesAndAttributes() throws {
        let fixture = try UnionFixture()
        let tree = fixture.scratch.path + "/trees/times_1"
        try fixture.scratch.write("trees/times_1/etc/motd", String(repeating: "hello\n", count: 2000))
        try shell("chown 3:4 '\(tree)/etc/motd' && setfattr -n user.origin -v shared '\(tree)/etc/motd' && touch -d '2001-02-03 04:05:06.789' '\(tree)/etc/motd'")
        _ = try fixture.repository.importLayer(from: tree, metadata: try LayerMetadata(parsing: "Layer: times\nVersion: 1\n", file: "test"))
        let union = try fixture.union(try fixture.ldf("t", ["main/times 1"]))
        let inode = try union.inode("etc/motd")
        let before = try union.attributes(of: inode)
        var changes = Union.AttributeChanges()
        changes.mode = 0o600
        let after = try union.setAttributes(inode, changes, openFile: nil)
        #expect(after.st_mode & 0o7777 == 0o600 && after.st_uid == 3 && after.st_gid == 4 && after.st_size == before.st_size)
        #expect(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
        #expect(try union.contents("etc/motd") == String(repeating: "hello\n", count: 2000))
        #expect(try union.extendedAttribute(inode, name: "user.origin") == Array("shared".utf8))
        #expect(try union.extendedAttributeNames(inode).contains("user.origin"))
        #expect((try? union.extendedAttribute(inode, name: "user.missing")) == nil)
        #expect(try union.extendedAttribute(inode, name: "user.strata.layer") == Array("private".utf8))
    }

    @Test func removingAndRecreatingAMergedDirectoryMakesItOpaque() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["srv/data/from-a": "a"])
        try fixture.layer("bb", "1", ["srv/data/from-b": "b"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1", "main/bb 1"]))
        let data = try union.inode("srv/data")
        for name in try union.names("srv/data") { try union.unlink(parent: data, name: name) }
        let srv = try union.inode("srv")
        try union.removeDirectory(parent: srv, name: "data")
        #expect(!union.exists("srv/data"))
        _ = try union.makeDirectory(parent: srv, name: "data", mode: 0o755, caller: .root)
        #expect(try union.names("srv/data").isEmpty)
    }

    @Test func renamingASharedDirectoryMovesItsWholeTree() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["opt/pkg/bin/run": "run", "opt/pkg/lib/x": "x"])
        try fixture.layer("bb", "1", ["opt/pkg/share/y": "y"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1", "main/bb 1"]))
        let opt = try union.inode("opt")
        let inode = try union.inode("opt/pkg")
        try union.rename(parent: opt, name: "pkg", newParent: opt, newName: "pkg2", flags: [])
        #expect(!union.exists("opt/pkg"))
        #expect(try union.names("opt/pkg2") == ["bin", "lib", "share"])
        #expect(try union.contents("opt/pkg2/share/y") == "y")
        #expect(try union.inode("opt/pkg2") == inode)
        // RENAME_NOREPLACE refuses an existing target; RENAME_EXCHANGE swaps.
        _ = try union.makeDirectory(parent: opt, name: "other", mode: 0o755, caller: .root)
        #expect(throws: FSError.exists) { try union.rename(parent: opt, name: "pkg2", newParent: opt, newName: "other", flags: .noReplace) }
        try union.rename(parent: opt, name: "pkg2", newParent: opt, newName: "other", flags: .exchange)
        #expect(try union.names("opt/other") == ["bin", "lib", "share"])
        #expect(try union.names("opt/pkg2").isEmpty)
    }

    /// Opens and getattrs of a shared file reuse what its lookup resolved, and every change to what its
    /// path shows wins over that: a copy-up, a revert, a live update, a whiteout.
    @Test func whatALookupResolvedGivesWayToChanges() throws {
        let fixture = try UnionFixture()
        try fixture.layer("app", "1", ["etc/app.conf": "c1", "etc/other": "o1"])
        try fixture.layer("app", "2", ["etc/app.conf": "c2", "etc/other": "o2"])
        let ldf = try fixture.ldf("t", ["main/app 1"])
        let union = try fixture.union(ldf)
        let conf = try union.inode("etc/app.conf")
        let other = try union.inode("etc/other")
        for _ in 0..<2 { #expect(try union.contents(inode: conf) == "c1" && union.contents(inode: other) == "o1") }

        try union.write("etc/app.conf", "mine")
        #expect(try union.contents(inode: conf) == "mine")
        #expect(try union.attributes(of: conf).st_size == 4)
        #expect(try union.extendedAttribute(conf, name: "user.strata.layer") == Array("private".utf8))
        #expect(try union.revert("etc/app.conf") == ["etc/app.conf"])
        #expect(try union.contents(inode: conf) == "c1")

        try AtomicFile.write("main/app 2\n", to: ldf)
        _ = try union.replaceStack(try fixture.stack(ldf))
        #expect(try union.contents(inode: other) == "o2" && union.contents(inode: conf) == "c2")
        #expect(try union.extendedAttribute(other, name: "user.strata.layer") == Array("app 2".utf8))

        let (parent, name) = try union.parentAndName("etc/other")
        try union.unlink(parent: parent, name: name)
        #expect(throws: FSError.notFound) { try union.contents(inode: other) }
        // (The fixture's reads leave their descriptors registered: stat-able, as open files of a name gone.)
        #expect(try union.attributes(of: other).st_nlink == 0)
    }

    @Test func revertBringsTheSharedOriginalBack() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/motd": "welcome", "etc/issue": "debian"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        try union.write("etc/motd", "pwned")
        let etc = try union.inode("etc")
        try union.unlink(parent: etc, name: "issue")
        #expect(try union.revert("/etc/motd") == ["etc/motd"])
        #expect(try union.revert("etc/issue") == ["etc/issue"])
        #expect(try union.contents("etc/motd") == "welcome")
        #expect(try union.contents("etc/issue") == "debian")
    }

    /// A listing shows the names of a shared hard link with one number before the kernel looked any up
    /// (`ls -i` of a fresh mount), and the lookups that follow keep it.
    @Test func hardLinksInASharedLayerShowOneNumberInAListing() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["usr/bin/a": "x", "usr/bin/c": "y"], links: ["usr/bin/b": "usr/bin/a"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        let listed = Dictionary(uniqueKeysWithValues: try union.list(path: "usr/bin").map { ($0.name, $0.inode) })
        #expect(listed["a"] == listed["b"] && listed["a"] != listed["c"], "\(listed)")
        #expect(try union.inode("usr/bin/b") == listed["b"] && union.inode("usr/bin/a") == listed["a"])
    }

    @Test func hardLinksInThePrivateLayerShareAnInode() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/file": "x"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        let etc = try union.inode("etc")
        let linked = try union.link(try union.inode("etc/file"), parent: etc, name: "link")
        #expect(linked.inode == (try union.inode("etc/file")))
        #expect(linked.attributes.st_nlink == 2)
        #expect(Set(try union.list(etc).map(\.inode)).count == 1)
    }
}
