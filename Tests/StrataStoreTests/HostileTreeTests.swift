import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Trees written by someone else, who may swap a directory for a symlink while Strata walks them:
/// removal, import and checkout must stay inside the tree whatever happens to it meanwhile.
@Suite struct HostileTreeTests {
    /// Flips `tree/d` between the directory it is and a symlink to `decoy`, each for a moment, until
    /// `body` returns.
    static func whileSwapping(_ tree: String, decoy: String, _ body: () throws -> Void) rethrows {
        let running = Atomic<Bool>(true)
        let swapper = Thread {
            while running.load(ordering: .relaxed) {
                guard rename(tree + "/d", tree + "/real") == 0 else { return }
                symlink(decoy, tree + "/d")
                usleep(100)
                unlink(tree + "/d")
                guard rename(tree + "/real", tree + "/d") == 0 else { return }
                usleep(100)
            }
        }
        swapper.start()
        defer {
            running.store(false, ordering: .relaxed)
            while !swapper.isFinished { usleep(1000) }
        }
        try body()
    }

    @Test func removeTreeNeverReachesThroughASymlinkSwappedInWhileItRuns() throws {
        let scratch = try TemporaryDirectory()
        let names = (0..<50).map { "f\($0)" }
        for name in names { try scratch.write("decoy/\(name)", "keep") }
        for round in 0..<40 {
            let tree = scratch.path + "/tree\(round)"
            for name in names { try scratch.write("tree\(round)/d/\(name)", "remove") }
            Self.whileSwapping(tree, decoy: scratch.path + "/decoy") { _ = try? removeTree(tree) }
            try removeTree(tree)
            #expect(access(tree, F_OK) != 0)
            let left = try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/decoy")
            try #require(left.count == names.count, "round \(round): removeTree deleted \(names.count - left.count) files of the decoy")
        }
    }

    @Test func importNeverReadsThroughASymlinkSwappedInWhileItRuns() throws {
        let scratch = try TemporaryDirectory()
        let secret = "secret \(UUID())"
        for index in 0..<20 {
            try scratch.write("decoy/f\(index)", secret)
            try scratch.write("tree/d/f\(index)", "public")
        }
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        try Self.whileSwapping(scratch.path + "/tree", decoy: scratch.path + "/decoy") {
            for round in 0..<200 {
                let batch = try store.beginBatch()
                var noCache: StatCache? = nil
                _ = try? DirectoryImporter.importTree(at: scratch.path + "/tree", into: batch, statCache: &noCache)
                try #require(!batch.has(SHA256.hash(Array(secret.utf8))), "round \(round): the decoy's file was read")
            }
        }
    }

    @Test func aSymlinkToADirectoryIsRemovedAndImportedAsALink() throws {
        let scratch = try TemporaryDirectory()
        try scratch.write("decoy/file", "keep")
        try scratch.write("tree/a/b", "x")
        #expect(symlink(scratch.path + "/decoy", scratch.path + "/tree/a/link") == 0)
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        let imported = try listing(of: scratch.path + "/tree", store: store)
        #expect(imported.entries["a/link"]?.kind == .symlink && imported.entries["a/link/file"] == nil)

        let directory = try FileDescriptor.directory(scratch.path + "/tree")
        #expect(throws: SystemError.self, "a symlink on the way is refused, not followed") { try removeTree(in: directory, "a/link/file") }
        try removeTree(in: directory, "a")
        try removeTree(in: directory, "a/missing/too")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/tree").isEmpty)
        #expect(try String(contentsOfFile: scratch.path + "/decoy/file", encoding: .utf8) == "keep")
    }

    /// Far deeper than PATH_MAX allows a path to name: checked out, imported back and removed.
    @Test func aPathDeeperThanPathMaxChecksOutImportsAndRemoves() throws {
        let scratch = try TemporaryDirectory()
        let store = try ObjectStore(root: scratch.path + "/store", create: true)
        let components = (0..<40).map { String(repeating: Character(UnicodeScalar(UInt8(ascii: "a") + UInt8($0 % 26))), count: 120) } + ["file"]
        #expect(components.joined(separator: "/").utf8.count > 4_800)
        let builder = TreeBuilder(source: "deep")
        let batch = try store.beginBatch()
        try builder.addFile(at: components, contents: Array("deep".utf8), mode: 0o640, into: batch)
        let root = try builder.store(into: batch)
        try batch.commit()

        let checkout = scratch.path + "/checkout"
        try Checkout.run(root, from: store, to: checkout)
        let directory = try FileDescriptor.directory(checkout)
        let file = try directory.open(beneath: components.joined(separator: "/"), O_RDONLY)
        #expect(try file.readAll() == Array("deep".utf8))
        #expect(try listing(of: checkout, store: store).digest == root.digest)
        try removeTree(checkout)
        #expect(access(checkout, F_OK) != 0)
    }
}
