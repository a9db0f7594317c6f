import Foundation
import Mirage
import StrataStore
import StrataTestSupport
import Testing

@Suite struct CatalogTests {
    @Test func versionChainDefaultAndParents() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let first = try fixture.checkin("web", ["etc/motd": "one"])
        let second = try fixture.checkin("web", ["etc/motd": "two"])
        #expect(first.version == 1 && second.version == 2)
        #expect(first.parent == nil)
        #expect(second.parent == first.digest, "a new version derives from the default it replaces")
        #expect(try catalog.resolve(.defaultVersion("web")).digest == second.digest)
        #expect(try catalog.resolve(.version("web", 1)).digest == first.digest)
        #expect(try catalog.resolve(.digest(first.digest)).reference == "web@1")

        _ = try catalog.setDefault(.version("web", 1), by: root)
        #expect(try catalog.resolve(try ImageReference(parsing: "web")).version == 1)
        _ = try catalog.tag(.version("web", 2), as: "stable", by: root)
        #expect(try catalog.resolve(try ImageReference(parsing: "web@stable")).version == 2)
        #expect(try catalog.versions(of: "web").map(\.isDefault) == [true, false])
        #expect(try catalog.namedImage("web").owner == root)
    }

    @Test func deleteKeepsRowsAndMovesTheDefault() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        try fixture.checkin("db", ["a": "1"])
        try fixture.checkin("db", ["a": "2"])
        let deleted = try catalog.delete(.version("db", 2), by: root)
        #expect(deleted.map(\.reference) == ["db@2"])
        let chain = try catalog.versions(of: "db")
        #expect(chain.map(\.state) == [.active, .deleted], "rows stay, marked deleted")
        #expect(try catalog.resolve(.defaultVersion("db")).version == 1, "the default falls back to the newest active version")
        #expect(throws: CatalogError.self) { try catalog.checkout(chain[1], to: fixture.scratch.path + "/out") }

        try catalog.delete(.defaultVersion("db"), allVersions: true, by: root)
        #expect(try catalog.versions(of: "db").allSatisfy { $0.state == .deleted })
        #expect(try catalog.namedImages().isEmpty)
        #expect(try catalog.namedImages(includeDeleted: true).map(\.name) == ["db"])
        #expect(throws: CatalogError.self) { try catalog.resolve(.defaultVersion("db")) }
    }

    @Test func accessListsAreEnforced() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        try fixture.checkin("app", ["f": "1"], by: alice)
        #expect(try catalog.namedImage("app").owner == alice)
        #expect(throws: CatalogError.self) { try catalog.resolve(.defaultVersion("app"), for: .checkout, by: bob) }
        #expect(throws: CatalogError.self) { try fixture.checkin("app", ["f": "2"], by: bob) }
        #expect(throws: CatalogError.self) { try catalog.delete(.defaultVersion("app"), by: bob) }
        #expect(throws: CatalogError.self) { try catalog.setAccess("app", users: [bob], permissions: [.checkout], granted: true, by: bob) }
        #expect(try catalog.resolve(.defaultVersion("app"), for: .checkout, by: root).version == 1, "root may do anything")

        try catalog.setAccess("app", users: [bob], permissions: [.checkout], granted: true, by: alice)
        #expect(try catalog.resolve(.defaultVersion("app"), for: .checkout, by: bob).version == 1)
        #expect(throws: CatalogError.self) { try fixture.checkin("app", ["f": "2"], by: bob) }
        try catalog.setAccess("app", users: [.everyone], permissions: [.checkin], granted: true, by: alice)
        let byBob = try fixture.checkin("app", ["f": "2"], by: bob)
        #expect(byBob.creator == bob && byBob.version == 2)
        #expect(throws: CatalogError.self) { try catalog.delete(.version("app", 2), by: bob) }

        try catalog.setAccess("app", users: [bob], permissions: [.checkout], granted: false, by: alice)
        #expect(throws: CatalogError.self) { try catalog.resolve(.defaultVersion("app"), for: .checkout, by: bob) }
    }

    @Test func manifestWithMissingObjectsIsRefused() throws {
        let fixture = try CatalogFixture()
        let absent = TreeEntry(name: ".", kind: .directory, mode: 0o755, digest: SHA256.hash(Array("not stored".utf8)))
        #expect(throws: CatalogError.self) { try fixture.catalog.checkin(manifest: ImageManifest(filesystem: absent), name: "broken", by: root) }
        #expect(try fixture.catalog.namedImages(includeDeleted: true).isEmpty, "nothing recorded")
    }

    @Test func referencesParse() throws {
        #expect(try ImageReference(parsing: "web") == .defaultVersion("web"))
        #expect(try ImageReference(parsing: "web@3") == .version("web", 3))
        #expect(try ImageReference(parsing: "web@prod") == .tag("web", "prod"))
        let digest = SHA256.hash(Array("x".utf8))
        #expect(try ImageReference(parsing: digest.description) == .digest(digest))
        #expect(throws: CatalogError.self) { try ImageReference(parsing: "bad name") }
        #expect(throws: CatalogError.self) { try ImageReference(parsing: "web@") }
    }
}
