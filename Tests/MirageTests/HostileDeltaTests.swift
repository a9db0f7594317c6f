import Foundation
import Mirage
import StrataStore
import StrataTestSupport
import Testing

/// Deltas crafted to write outside the checkout they are applied to: every one is refused, names the
/// entry at fault, and leaves what lies outside untouched.
@Suite struct HostileDeltaTests {
    /// A delta from one image to another, its operations then replaced by `operations`.
    static func crafted(_ fixture: CatalogFixture, _ operations: (String) -> [ImageDelta.Operation], blobs: [String]) throws
        -> (delta: ImageDelta, checkout: String, decoy: String)
    {
        let catalog = fixture.catalog
        let a = try fixture.checkin("img", ["etc/motd": "hello"])
        let b = try fixture.checkin("img", ["etc/motd": "hello again"])
        var delta = try ImageDelta.make(from: (a.digest, try catalog.manifest(of: a)), to: (b.digest, try catalog.manifest(of: b)), store: catalog.store)
        let decoy = fixture.scratch.path + "/decoy"
        try makeDirectories(decoy)
        delta.operations = operations(decoy)
        delta.blobs = Dictionary(uniqueKeysWithValues: blobs.map { (SHA256.hash(Array($0.utf8)), Array($0.utf8)) })
        let checkout = fixture.scratch.path + "/checkout"
        try catalog.checkout(a, to: checkout)
        return (delta, checkout, decoy)
    }

    static func file(_ contents: String) -> TreeEntry {
        TreeEntry(name: "", kind: .regular, mode: 0o644, size: UInt64(contents.utf8.count), digest: SHA256.hash(Array(contents.utf8)))
    }

    static let directory = TreeEntry(name: "", kind: .directory, mode: 0o755)

    @Test func aSymlinkCreatedByTheDeltaIsNotWrittenThrough() throws {
        let fixture = try CatalogFixture()
        let (delta, checkout, decoy) = try Self.crafted(fixture, { decoy in
            [.create("x", TreeEntry(name: "", kind: .symlink, mode: 0o777, target: decoy)),
             .create("x/cron.d", Self.directory),
             .create("x/cron.d/job", Self.file("* * * * * root evil"))]
        }, blobs: ["* * * * * root evil"])
        let error = #expect(throws: CatalogError.self) { try delta.apply(to: checkout, store: fixture.catalog.store) }
        #expect(error?.description.contains("x/cron.d") == true, "\(String(describing: error))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: decoy).isEmpty, "nothing was written through the symlink")
    }

    @Test func aSymlinkAlreadyInTheCheckoutIsNotActedThrough() throws {
        let fixture = try CatalogFixture()
        try fixture.scratch.write("decoy/keep", "kept")
        let operations: [ImageDelta.Operation] = [.create("etc/link/job", Self.file("evil")), .setMetadata("etc/link", Self.directory),
                                                  .remove("etc/link/keep"), .replace("etc/link/keep", Self.file("evil"))]
        for operation in operations {
            let (delta, checkout, decoy) = try Self.crafted(fixture, { _ in [operation] }, blobs: ["evil"])
            chmod(decoy, 0o700)
            #expect(symlink(decoy, checkout + "/etc/link") == 0)
            let error = #expect(throws: CatalogError.self) { try delta.apply(to: checkout, store: fixture.catalog.store) }
            #expect(error?.description.contains("etc/link") == true, "\(String(describing: error))")
            #expect(try FileManager.default.contentsOfDirectory(atPath: decoy) == ["keep"], "\(operation)")
            #expect(try String(contentsOfFile: decoy + "/keep", encoding: .utf8) == "kept", "\(operation)")
            var st = stat()
            #expect(stat(decoy, &st) == 0 && st.st_mode & 0o777 == 0o700, "\(operation): the decoy's mode is untouched")
            try removeTree(checkout)
        }
    }

    @Test func pathsLeavingTheCheckoutAreRefusedByName() throws {
        let fixture = try CatalogFixture()
        for path in ["../escape", "etc/../../escape", "/../escape"] {
            let (delta, checkout, _) = try Self.crafted(fixture, { _ in [.create(path, Self.file("evil"))] }, blobs: ["evil"])
            let error = #expect(throws: CatalogError.self) { try delta.apply(to: checkout, store: fixture.catalog.store) }
            #expect(error?.description.contains(path) == true, "\(String(describing: error))")
            #expect(access(fixture.scratch.path + "/escape", F_OK) != 0, "\(path)")
            try removeTree(checkout)
        }
    }
}
