import Foundation
import StrataStore
import StrataTestSupport
import Testing
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// The private layer holds its recently used directories open (`PrivateDirectories`): every change
/// that moves or removes one must make the next request by that path reach what the path names now,
/// and nothing, not even a directory swapped for a symlink behind the daemon's back, may lead a
/// request out of the private layer.
@Suite struct PrivateDirectoryTests {
    @Test func aMovedOrRemovedDirectoryIsNotReachedByItsOldPath() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/motd": "welcome"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        let root = union.privateRoot

        // Rename: the new "srv" is a new directory, the old one is "old".
        try make(union, "srv/a")
        try union.rename(parent: 1, name: "srv", newParent: 1, newName: "old", flags: [])
        try make(union, "srv/b")
        #expect(try union.names("srv") == ["b"] && union.names("old") == ["a"])
        #expect(onDisk(root, "srv/b") && !onDisk(root, "old/b") && onDisk(root, "old/a"))

        // Removal: a directory made again under the same name is the one written.
        let old = try union.inode("old")
        try union.unlink(parent: old, name: "a")
        try union.removeDirectory(parent: 1, name: "old")
        try make(union, "old/c")
        #expect(try onDisk(root, "old/c") && union.names("old") == ["c"])

        // Exchange: each name now leads to the other directory.
        try make(union, "x/fromX")
        try make(union, "y/fromY")
        try union.rename(parent: 1, name: "x", newParent: 1, newName: "y", flags: .exchange)
        try make(union, "x/new")
        #expect(try union.names("x") == ["fromY", "new"] && union.names("y") == ["fromX"])
        #expect(onDisk(root, "x/new") && onDisk(root, "x/fromY"))

        // Replaced by rename: an empty directory at the target goes, the source takes its name.
        try make(union, "full/f")
        _ = try union.makeDirectory(parent: 1, name: "empty", mode: 0o755, caller: .root)
        _ = try union.names("empty")
        try union.rename(parent: 1, name: "full", newParent: 1, newName: "empty", flags: [])
        try make(union, "empty/g")
        #expect(try union.names("empty") == ["f", "g"] && onDisk(root, "empty/g"))

        // Revert of a private directory over a shared one: the next write copies up afresh.
        try union.write("etc/motd", "mine")
        #expect(try union.revert("etc") == ["etc", "etc/motd"])
        try union.write("etc/motd", "again")
        #expect(try union.contents("etc/motd") == "again")
        #expect(try String(contentsOfFile: root + "/etc/motd", encoding: .utf8) == "again")

        // Reset: the layer starts empty, and nothing reaches the archived one.
        let archive = fixture.scratch.path + "/archive"
        try makeDirectories(archive)
        _ = try union.resetPrivateLayer(archivingTo: archive)
        try union.write("etc/motd", "fresh")
        #expect(try String(contentsOfFile: root + "/etc/motd", encoding: .utf8) == "fresh")
        #expect(try String(contentsOfFile: archive + "/private/etc/motd", encoding: .utf8) == "again")
    }

    /// Past its bound the layer closes the directories it used least recently, and finds them again.
    @Test func heldDirectoriesAreBounded() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/motd": "welcome"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        let before = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        for index in 0..<600 { try make(union, "many/d\(index)/f") }
        let after = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        #expect(after - before < 450, "\(after - before) descriptors more")
        for index in stride(from: 0, to: 600, by: 37) { #expect(try union.attributes(of: union.inode("many/d\(index)/f")).st_size == 0) }
    }

    /// A name taken in either layer cannot be made again, whatever it is.
    @Test func aTakenNameIsNotMadeAgain() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/motd": "welcome"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        try make(union, "srv/file")
        let srv = try union.inode("srv")
        _ = try union.makeDirectory(parent: srv, name: "directory", mode: 0o755, caller: .root)
        _ = try union.makeSymlink(parent: srv, name: "link", target: "/nowhere", caller: .root)
        for name in ["file", "directory", "link"] {
            #expect(throws: FSError.exists) { try union.create(parent: srv, name: name, mode: 0o644, flags: O_RDWR, caller: .root) }
            #expect(throws: FSError.exists) { try union.makeDirectory(parent: srv, name: name, mode: 0o755, caller: .root) }
            #expect(throws: FSError.exists) { try union.makeSymlink(parent: srv, name: name, target: "x", caller: .root) }
        }
        let etc = try union.inode("etc")
        #expect(throws: FSError.exists) { try union.create(parent: etc, name: "motd", mode: 0o644, flags: O_RDWR, caller: .root) }
        #expect(throws: FSError.exists) { try union.makeDirectory(parent: 1, name: "etc", mode: 0o755, caller: .root) }
        // Once deleted, the shared name is free.
        try union.unlink(parent: etc, name: "motd")
        _ = try union.create(parent: etc, name: "motd", mode: 0o644, flags: O_RDWR, caller: .root)
        #expect(try union.contents("etc/motd").isEmpty)
    }

    @Test func aDirectorySwappedForASymlinkLeadsNowhere() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/motd": "welcome"])
        let union = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        let root = union.privateRoot
        let outside = fixture.scratch.path + "/outside"
        try makeDirectories(outside)
        try fixture.scratch.write("outside/f", "secret")

        // Through the union: the directory renamed away and a symlink made in its place.
        try make(union, "d/f")
        let f = try union.inode("d/f")
        try union.rename(parent: 1, name: "d", newParent: 1, newName: "d2", flags: [])
        let link = try union.makeSymlink(parent: 1, name: "d", target: outside, caller: .root).inode
        #expect(throws: FSError.self) { try union.lookup(parent: link, name: "f") }
        #expect(throws: FSError.self) { try union.create(parent: link, name: "g", mode: 0o644, flags: O_RDWR, caller: .root) }
        #expect(try union.contents(inode: f).isEmpty && union.path(of: f) == "d2/f")

        // Behind the daemon's back (nothing may do so while it serves; if something did): a held
        // directory moved and a symlink put at its path. A request by that path acts in the directory
        // held, inside the layer, or fails; it never follows the symlink.
        try make(union, "e/f")
        let e = try union.inode("e")
        _ = try sys("rename", root) { Glibc.rename(root + "/e", root + "/e-moved") }
        _ = try sys("symlink", root) { symlink(outside, root + "/e") }
        _ = try? union.create(parent: e, name: "g", mode: 0o644, flags: O_RDWR, caller: .root)
        _ = try? union.setExtendedAttribute(try union.lookup(parent: e, name: "f").inode, name: "user.x", value: [1], flags: 0)
        #expect(!FileManager.default.fileExists(atPath: outside + "/g"))
        #expect(try ExtendedAttributes.get(.path(outside + "/f"), "user.x") == nil)
        // A union that holds nothing yet meets the symlink, and refuses it.
        let fresh = try fixture.union(try fixture.ldf("t", ["main/aa 1"]))
        #expect(throws: FSError.self) { try fresh.lookup(parent: try fresh.inode("e"), name: "f") }
        #expect(throws: FSError.self) { try fresh.create(parent: try fresh.inode("e"), name: "h", mode: 0o644, flags: O_RDWR, caller: .root) }
        #expect(!FileManager.default.fileExists(atPath: outside + "/h"))
    }

    /// Makes the directories on the way (private) and an empty private file at `path`.
    private func make(_ union: Union, _ path: String) throws {
        var parent: UInt64 = 1
        let parts = path.split(separator: "/").map(String.init)
        for directory in parts.dropLast() {
            if let existing = try? union.lookup(parent: parent, name: directory) {
                parent = existing.inode
            } else {
                parent = try union.makeDirectory(parent: parent, name: directory, mode: 0o755, caller: .root).inode
            }
        }
        let (entry, file) = try union.create(parent: parent, name: parts.last!, mode: 0o644, flags: O_RDWR, caller: .root)
        union.release(entry.inode, descriptor: file.descriptor)
    }

    private func onDisk(_ root: String, _ path: String) -> Bool {
        var st = stat()
        return lstat(root + "/" + path, &st) == 0
    }
}
