import Foundation
import Synchronization
import StrataHTTP
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Downloads objects of a repository served over HTTP, several at once (one connection per worker),
/// and checks every one against its digest before anything else sees it.
///
/// Blobs stream into `partial/HEX` in the mirror and move into the store once whole and verified;
/// workers commit what they have every second, so an interrupted fetch keeps the objects it
/// completed, and a partial file is resumed with a `Range` request (restarted from the beginning if
/// the server ignores the range or the resumed whole does not verify). Manifests are small and are
/// returned in memory, for the caller to store once their children are stored.
struct ObjectFetcher: Sendable {
    let location: HTTPLocation
    let trust: HTTPClient.Trust
    let store: ObjectStore
    let partialDirectory: String
    var connections = 4

    /// Manifests larger than this are refused rather than held in memory.
    static let manifestLimit = 256 << 20

    static func relativePath(of digest: Digest) -> String {
        "objects/sha256/\(digest.hex.prefix(2))/\(digest.hex.dropFirst(2))"
    }

    /// Fetches manifests into memory, each verified.
    func manifests(_ digests: [Digest]) throws -> [Digest: [UInt8]] {
        let fetched = Mutex<[Digest: [UInt8]]>([:])
        try inParallel(digests) { client, digest, _ in
            let bytes = try manifest(digest, client: client)
            fetched.withLock { $0[digest] = bytes }
        }
        return fetched.withLock { $0 }
    }

    /// Fetches one manifest into memory, verified.
    func manifest(_ digest: Digest, client: HTTPClient) throws -> [UInt8] {
        let relative = Self.relativePath(of: digest)
        let (response, bytes) = try client.get(relative, limit: Self.manifestLimit)
        try check(response, for: relative, expecting: [200])
        let actual = SHA256.hash(bytes)
        guard actual == digest else { throw corrupt(digest, actual: actual) }
        return bytes
    }

    /// Fetches blobs of known sizes into the store. `received` is told of every chunk (its size, or a
    /// negative size for bytes thrown away) and of every blob completed.
    func blobs(_ sizes: [Digest: UInt64], received: @escaping @Sendable (_ completed: Bool, _ bytes: Int) -> Void) throws {
        try makeDirectories(partialDirectory)
        // Largest first, so one big file does not start last and run alone.
        let ordered = sizes.sorted { $0.value > $1.value }
        try inParallel(ordered) { client, blob, batch in
            try batch.adopt(fileAt: try download(blob.key, size: blob.value, client: client, received: received), as: blob.key)
            received(true, 0)
        }
    }

    /// Downloads one blob into its partial file, resuming what an earlier run left, and returns the
    /// file's path once its content verified.
    func download(_ digest: Digest, size: UInt64, client: HTTPClient, received: @Sendable (_ completed: Bool, _ bytes: Int) -> Void) throws -> String {
        let path = "\(partialDirectory)/\(digest.hex)"
        if try !download(digest, size: size, to: path, client: client, resume: true, received: received) {
            guard try download(digest, size: size, to: path, client: client, resume: false, received: received) else {
                throw LayerError("object \(digest) from \(location.url(Self.relativePath(of: digest))) did not verify after a fresh download")
            }
        }
        return path
    }

    /// Downloads one blob into `path`, continuing what is there when `resume` allows. Returns false
    /// when a resumed download does not verify (the partial file was bad: try again from scratch).
    /// A fresh download that does not verify is an error, and its bytes are removed.
    private func download(_ digest: Digest, size: UInt64, to path: String, client: HTTPClient, resume: Bool,
                          received: @Sendable (_ completed: Bool, _ bytes: Int) -> Void) throws -> Bool {
        let relative = Self.relativePath(of: digest)
        let file = try FileDescriptor.open(path, O_RDWR | O_CREAT, mode: 0o644)
        var hasher = SHA256()
        var have: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        if resume, try file.stat().st_size <= size {
            // Hash what an earlier run left; a complete file needs no request at all.
            while true {
                let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                if n == 0 { break }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                have += UInt64(n)
            }
            received(false, Int(have))
        }
        if have < size {
            // A partial answer is the range asked for: the client checks its Content-Range.
            let response = try client.send("GET", relative, range: have > 0 ? RequestedRange(from: Int64(have)) : nil)
            try check(response, for: relative, expecting: [200, 206])
            if have > 0 && response.status != 206 {
                // The server sends the whole object after all.
                received(false, -Int(have))
                have = 0
                hasher = SHA256()
            }
            guard ftruncate(file.raw, off_t(have)) == 0, lseek(file.raw, off_t(have), SEEK_SET) >= 0 else { throw SystemError("ftruncate", path) }
            if let length = response.contentLength, have + UInt64(length) != size {
                unlink(path)
                throw LayerError("object \(digest) from \(location.url(relative)): the server sends \(have + UInt64(length)) bytes, but the layer's tree says \(size); refused")
            }
            while have <= size {
                let n = try buffer.withUnsafeMutableBytes { try client.readBody(into: $0) }
                if n == 0 { break }
                try buffer.withUnsafeBytes { chunk in
                    let part = UnsafeRawBufferPointer(rebasing: chunk[..<n])
                    hasher.update(part)
                    try file.write(part)
                }
                have += UInt64(n)
                received(false, n)
            }
        }
        let actual = hasher.finalize()
        guard actual == digest, have == size else {
            unlink(path)
            received(false, -Int(have))
            if resume { return false }
            throw corrupt(digest, actual: actual)
        }
        guard fchmod(file.raw, 0o444) == 0 else { throw SystemError("fchmod", path) }
        return true
    }

    private func check(_ response: HTTPClient.Response, for relative: String, expecting statuses: [Int]) throws {
        guard statuses.contains(response.status) else {
            let why = response.status == 404 ? " (the served repository lacks an object its index refers to)" : ""
            throw LayerError("\(location.url(relative)): the server answered \(response.status) \(response.reason)\(why)")
        }
    }

    private func corrupt(_ digest: Digest, actual: Digest) -> LayerError {
        LayerError("object \(digest) from \(location.url(Self.relativePath(of: digest))) is corrupt: its content hashes to \(actual); not stored")
    }

    /// Runs `body` over `items` on `connections` workers, each with its own connection and batch.
    /// Stops at the first error and throws it, after committing what the workers completed.
    private func inParallel<Item: Sendable>(_ items: [Item], _ body: @Sendable (HTTPClient, Item, ObjectStore.Batch) throws -> Void) throws {
        if items.isEmpty { return }
        let next = Atomic<Int>(0)
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: min(connections, items.count)) { _ in
            let client = HTTPClient(location: location, trust: trust)
            do {
                var batch = try store.beginBatch()
                var lastCommit = ContinuousClock.now
                // Whatever is staged was verified: keep it even when a later object fails.
                defer { try? batch.commit() }
                while failure.withLock({ $0 == nil }) {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < items.count else { break }
                    try body(client, items[index], batch)
                    if ContinuousClock.now - lastCommit > .seconds(1) {
                        try batch.commit()
                        batch = try store.beginBatch()
                        lastCommit = ContinuousClock.now
                    }
                }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
