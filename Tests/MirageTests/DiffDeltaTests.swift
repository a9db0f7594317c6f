import Foundation
import Mirage
import StrataStore
import StrataTestSupport
import Testing

@Suite struct DiffDeltaTests {
    static let base = ["etc/motd": "hello", "etc/passwd": "root:x:0:0", "usr/bin/tool": "#!/bin/sh", "opt/old/file": "gone soon",
                       "var/lib/data/a": "a", "srv/": ""]

    /// The base with a few changes of every kind.
    static var changed: [String: String] {
        var files = base
        files["etc/motd"] = "hello again"          // modified
        files["etc/new"] = "new"                   // added
        files["opt/old/file"] = nil                // its directories go too
        files["srv/"] = nil
        files["srv"] = "now a file"                // a directory becomes a file
        files["var/lib/data/a"] = nil
        files["var/lib/data/a/b/c"] = "deep"       // a file becomes a directory with contents
        return files
    }

    @Test func diffListsExactlyTheChanges() throws {
        let fixture = try CatalogFixture()
        let a = try fixture.checkin("img", Self.base)
        let b = try fixture.checkin("img", Self.changed, modes: ["etc/passwd": 0o600])
        let changes = try ImageDiff.compare(try fixture.catalog.manifest(of: a), try fixture.catalog.manifest(of: b), store: fixture.catalog.store)
        let summary = changes.map { "\($0.change.rawValue) \($0.path)" }
        #expect(summary == ["modified /etc/motd", "added /etc/new", "metadata /etc/passwd", "deleted /opt", "modified /srv", "modified /var/lib/data/a"])
        let motd = try #require(changes.first { $0.path == "/etc/motd" })
        #expect(motd.old?.digest == SHA256.hash(Array("hello".utf8)) && motd.new?.digest == SHA256.hash(Array("hello again".utf8)))
        #expect(changes.first { $0.path == "/etc/passwd" }?.new?.mode == "600")
        #expect(changes.allSatisfy { $0.layer == nil }, "plain check-ins have no layers to attribute")

        let expanded = try ImageDiff.compare(try fixture.catalog.manifest(of: a), try fixture.catalog.manifest(of: b), store: fixture.catalog.store,
                                             expandDirectories: true)
        #expect(expanded.contains { $0.path == "/opt/old/file" && $0.change == .deleted })
    }

    @Test func diffAttributesChangesToLayers() throws {
        let fixture = try CatalogFixture()
        let store = fixture.catalog.store
        func stored(_ label: String, _ files: [String: String]) throws -> TreeEntry {
            let batch = try store.beginBatch()
            var noCache: StatCache? = nil
            let root = try DirectoryImporter.importTree(at: try fixture.tree(label, files), into: batch, statCache: &noCache).root
            try batch.commit()
            return root
        }
        func layer(_ name: String, _ version: String, _ files: [String: String], whiteouts: [String: String]? = nil) throws -> ImageManifest.LayerReference {
            let manifest = LayerManifest(metadata: "Layer: \(name)\nVersion: \(version)\n", filesystem: try stored("\(name)-\(version)", files), scripts: nil)
            return ImageManifest.LayerReference(repository: "main", name: name, version: version, layer: try store.put(manifest.encoded()),
                                                whiteouts: try whiteouts.map { try stored("\(name)-wh-\(UUID())", $0) })
        }
        let baseFiles = ["bin/sh": "sh", "etc/base.conf": "conf"]
        let oldImage = ImageManifest(filesystem: try stored("old", baseFiles.merging(["usr/bin/app": "app 1"]) { $1 }),
                                     layers: [try layer("app", "1", ["usr/bin/app": "app 1"]), try layer("base", "1", baseFiles)])
        let newImage = ImageManifest(filesystem: try stored("new", ["bin/sh": "sh", "usr/bin/app": "app 2", "etc/local": "mine"]),
                                     layers: [try layer("app", "2", ["usr/bin/app": "app 2"]),
                                              try layer("base", "1", baseFiles, whiteouts: ["etc/base.conf": ""])],
                                     privateLayer: try stored("private", ["etc/local": "mine"]))
        let changes = try ImageDiff.compare(oldImage, newImage, store: store)
        let attributed = Dictionary(uniqueKeysWithValues: changes.map { ($0.path, "\($0.change.rawValue) \($0.layer ?? "-")") })
        #expect(attributed["/usr/bin/app"] == "modified main/app 2")
        #expect(attributed["/etc/local"] == "added private")
        #expect(attributed["/etc/base.conf"] == "deleted main/base 1", "a deletion names the layer that provided the file")
    }

    @Test func deltaRoundTripVerifiesTheTarget() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let a = try fixture.checkin("img", Self.base)
        let b = try fixture.checkin("img", Self.changed, modes: ["etc/passwd": 0o600])
        let delta = try ImageDelta.make(from: (a.digest, try catalog.manifest(of: a)), to: (b.digest, try catalog.manifest(of: b)), store: catalog.store)
        #expect(Set(delta.blobs.keys) == Set(["hello again", "new", "now a file", "deep"].map { SHA256.hash(Array($0.utf8)) }),
                "only the new contents travel")
        let decoded = try ImageDelta(decoding: delta.encoded(), file: "test.delta")
        #expect(decoded.operations.count == delta.operations.count && decoded.target == b.digest)

        let directory = fixture.scratch.path + "/checkout"
        try catalog.checkout(a, to: directory)
        try decoded.apply(to: directory, store: catalog.store)
        let expected = fixture.scratch.path + "/expected"
        try catalog.checkout(b, to: expected)
        try expectIdentical(directory, expected, store: try ObjectStore(root: fixture.scratch.path + "/compare", create: true))
    }

    @Test func damagedDeltaAndWrongDirectoryAreRefused() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let a = try fixture.checkin("img", Self.base)
        let b = try fixture.checkin("img", Self.changed)
        var bytes = try ImageDelta.make(from: (a.digest, try catalog.manifest(of: a)), to: (b.digest, try catalog.manifest(of: b)), store: catalog.store).encoded()
        bytes[bytes.count / 2] ^= 0x20
        #expect(throws: CatalogError.self) { try ImageDelta(decoding: bytes, file: "damaged.delta") }

        let delta = try ImageDelta.make(from: (a.digest, try catalog.manifest(of: a)), to: (b.digest, try catalog.manifest(of: b)), store: catalog.store)
        let empty = fixture.scratch.path + "/empty"
        try makeDirectories(empty)
        #expect(throws: CatalogError.self) { try delta.apply(to: empty, store: catalog.store) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "nothing changed")

        // A checkout changed elsewhere passes the preconditions but not the final verification.
        let drifted = fixture.scratch.path + "/drifted"
        try catalog.checkout(a, to: drifted)
        try AtomicFile.write("tampered", to: drifted + "/usr/bin/tool")
        #expect(throws: CatalogError.self) { try delta.apply(to: drifted, store: catalog.store) }
    }
}
