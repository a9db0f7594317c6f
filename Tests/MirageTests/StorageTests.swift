import Foundation
import Mirage
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing

@Suite struct StorageTests {
    /// Every object an image reaches, by walking it.
    static func closure(of version: ImageVersion, in store: ObjectStore) -> Set<Digest> {
        Reachability(store: store, roots: [(name: version.reference, digest: version.digest)]).reached
    }

    @Test func gcFreesExactlyTheUnreachable() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let kept = try fixture.checkin("kept", ["etc/motd": "shared", "etc/kept": "kept only"])
        let dropped = try fixture.checkin("dropped", ["etc/motd": "shared", "etc/dropped": "dropped only", "var/lib/x": "x"])
        let held = try fixture.checkin("held", ["held": "held only"])
        try catalog.delete(.defaultVersion("dropped"), by: root)
        try catalog.delete(.defaultVersion("held"), by: root)
        try makeDirectories(fixture.home.path + "/held")
        try AtomicFile.write("# archived for forensics\n\(held.digest)\n", to: fixture.home.path + "/held/forensics")
        let stray = try catalog.store.put(Array("written by an aborted import".utf8))
        let droppedManifest = try catalog.manifest(of: dropped)

        let keep = Self.closure(of: kept, in: catalog.store).union(Self.closure(of: held, in: catalog.store))
        let expected = Self.closure(of: dropped, in: catalog.store).subtracting(keep).union([stray])
        let roots = try #require(try HomeRoots.collect(home: fixture.home).first)

        let dry = try GarbageCollector.collect(roots.store, roots: roots.roots, dryRun: true)
        #expect(Set(dry.freed) == expected)
        #expect(try Set(catalog.store.allObjects()).isSuperset(of: expected), "a dry run frees nothing")

        let report = try GarbageCollector.collect(roots.store, roots: roots.roots, dryRun: false)
        #expect(Set(report.freed) == expected)
        #expect(try Set(catalog.store.allObjects()) == keep, "everything reachable stays, nothing else")
        #expect(try catalog.versions(of: "dropped").count == 1, "the catalog row survives")
        try catalog.forgetCollected(report.freed)
        #expect(throws: CatalogError.self, "the index no longer vouches for collected trees") {
            try catalog.checkin(manifest: droppedManifest, name: "dropped", by: root)
        }
        let out = fixture.scratch.path + "/out"
        try catalog.checkout(kept, to: out)
        #expect(try String(contentsOfFile: out + "/etc/motd", encoding: .utf8) == "shared")
    }

    @Test func transferCopiesOnlyMissingObjectsAndVerifies() throws {
        let source = try CatalogFixture("transferSource")
        let destination = try CatalogFixture("transferDestination")
        let first = try source.checkin("app", ["a": "one", "b": "two", "c/d": "three"])
        let second = try source.checkin("app", ["a": "one", "b": "two changed", "c/d": "three"])

        let initial = try ObjectTransfer.copy([first.digest], from: source.catalog.store, to: destination.catalog.store)
        #expect(initial.present == 0 && initial.copied == Self.closure(of: first, in: source.catalog.store).count)
        let incremental = try ObjectTransfer.copy([second.digest], from: source.catalog.store, to: destination.catalog.store)
        let new = Self.closure(of: second, in: source.catalog.store).subtracting(Self.closure(of: first, in: source.catalog.store))
        #expect(incremental.copied == new.count, "only what the destination lacks")
        #expect(Reachability(store: destination.catalog.store, roots: [("app@2", second.digest)]).missing.isEmpty)

        // A corrupt object in the source is refused, and nothing of that copy is kept.
        let third = try source.checkin("app", ["a": "one", "e": "brand new"])
        let blob = SHA256.hash(Array("brand new".utf8))
        let path = source.catalog.store.path(of: blob)
        chmod(path, 0o644)
        try AtomicFile.write("tampered!", to: path)
        #expect(throws: CatalogError.self) { try ObjectTransfer.copy([third.digest], from: source.catalog.store, to: destination.catalog.store) }
        #expect(!destination.catalog.store.has(third.digest))
    }
}
