import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ObjectStoreTests {
    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func digestParsesOnlyCanonicalForm() throws {
        let digest = SHA256.hash(Array("strata".utf8))
        #expect(Digest(digest.description) == digest)
        #expect(Digest(digest.hex) == digest)
        #expect(Digest("sha256:" + digest.hex.uppercased()) == nil)
        #expect(Digest("sha256:1234") == nil)
        #expect(Digest(String(repeating: "g", count: 64)) == nil)
    }

    @Test func putStoresUnderTheDigestAndReadsBack() throws {
        let directory = try TemporaryDirectory()
        let store = try ObjectStore(root: directory.path, create: true)
        let bytes = Array("hello, layers\n".utf8)
        let digest = try store.put(bytes)
        #expect(digest == SHA256.hash(bytes))
        #expect(store.has(digest))
        #expect(try store.read(digest) == bytes)
        #expect(store.path(of: digest).hasSuffix("objects/sha256/\(digest.hex.prefix(2))/\(digest.hex.dropFirst(2))"))
        #expect(try store.allObjects() == [digest])
        // Nothing is left in the staging area.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)
    }

    @Test func batchObjectsAppearOnlyOnCommit() throws {
        let directory = try TemporaryDirectory()
        let store = try ObjectStore(root: directory.path, create: true)
        let batch = try store.beginBatch()
        let digest = try batch.put(Array("staged".utf8))
        #expect(batch.has(digest))
        #expect(!store.has(digest))
        try batch.commit()
        #expect(store.has(digest))
    }

    @Test func abandonedBatchLeavesNothingBehind() throws {
        let directory = try TemporaryDirectory()
        let store = try ObjectStore(root: directory.path, create: true)
        do {
            let batch = try store.beginBatch()
            try batch.put(Array("never committed".utf8))
        }
        #expect(try store.allObjects().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/tmp").isEmpty)
    }

    @Test func concurrentWritersOfTheSameObjectAgree() throws {
        let directory = try TemporaryDirectory()
        let bytes = [UInt8](repeating: 7, count: 1 << 20)
        let store = try ObjectStore(root: directory.path, create: true)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let other = try! ObjectStore(root: directory.path)
            _ = try! other.put(bytes)
        }
        let digest = SHA256.hash(bytes)
        #expect(try store.readVerified(digest) == bytes)
        #expect(try store.allObjects() == [digest])
    }

    @Test func corruptObjectsAreFound() throws {
        let directory = try TemporaryDirectory()
        let store = try ObjectStore(root: directory.path, create: true)
        let good = try store.put(Array("good".utf8))
        let bad = try store.put(Array("bad".utf8))
        chmod(store.path(of: bad), 0o644)
        try AtomicFile.write("tampered", to: store.path(of: bad))
        #expect(try store.corruptObjects() == [bad])
        #expect(throws: StoreError.self) { try store.readVerified(bad) }
        #expect(try store.readVerified(good) == Array("good".utf8))
    }
}
