import Foundation
import Synchronization
import StrataHTTP
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Objects of a served repository fetched one at a time, as a lazily mounted VLFS opens files and lists
/// directories: each is downloaded and verified against its digest before the open or listing goes on.
///
/// A verified object is read from where it is staged at once, and made durable in the mirror's store
/// with others in one commit a moment later (one `syncfs` for many objects: a commit of its own, with
/// its fsyncs, would cost an open about ten milliseconds here). A crash before the commit loses only
/// what a later open fetches again.
///
/// Concurrent requests for one object share one download (the later ones wait for the first), and
/// a background `prefetch` goes through the same door, so the daemon never downloads an object twice
/// or writes one partial file from two threads. Connections are kept between fetches, a few at a
/// time. There is one instance per mirror in a process (`for`), so every stack a live update builds
/// shares it.
public final class RemoteObjects: ManifestSource {
    public let repository: Repository
    private let fetcher: ObjectFetcher
    private let idle = Mutex<[ClientBox]>([])
    private let flights = Mutex<[Digest: Flight]>([:])
    /// Verified objects waiting for their commit, where they can be read meanwhile.
    private let pending = Mutex<(batch: ObjectStore.Batch?, staged: [Digest: String], commitScheduled: Bool)>((nil, [:], false))
    /// Held by a commit: commits run one after the other.
    private let committing = Mutex(())
    private let fetchedObjects = Atomic<Int>(0)
    private let fetchedBytes = Atomic<Int>(0)

    /// Connections kept open between fetches.
    public static let idleLimit = 8
    /// How long staged objects wait to be committed together.
    static let commitDelay = DispatchTimeInterval.milliseconds(50)

    private static let instances = Mutex<[String: RemoteObjects]>([:])

    /// The fetcher of a mirror's objects, nil for a repository of its own.
    public static func `for`(_ repository: Repository) -> RemoteObjects? {
        guard let origin = repository.origin else { return nil }
        return instances.withLock { instances in
            if let existing = instances[repository.path] { return existing }
            let made = RemoteObjects(repository: repository, origin: origin)
            instances[repository.path] = made
            return made
        }
    }

    private init(repository: Repository, origin: HTTPLocation) {
        self.repository = repository
        fetcher = ObjectFetcher(location: origin, trust: repository.tls, store: repository.store, partialDirectory: repository.path + "/partial")
    }

    /// Objects and bytes this process downloaded one at a time so far, from every mirror.
    public static var fetched: (objects: Int, bytes: Int) {
        instances.withLock { instances in
            instances.values.reduce((0, 0)) { ($0.0 + $1.fetchedObjects.load(ordering: .relaxed), $0.1 + $1.fetchedBytes.load(ordering: .relaxed)) }
        }
    }

    /// Opens a blob of `size` bytes read-only (a raw descriptor the caller closes), downloading it
    /// first unless it is in the store or staged, or another thread is downloading it (then waits for
    /// that download and shares its outcome).
    public func open(_ digest: Digest, size: UInt64) throws -> Int32 {
        let path = try fetch(digest, .blob(size: size))
        var fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        // Committed between the fetch and this open: it is in the store now.
        if fd < 0 && errno == ENOENT { fd = Glibc.open(repository.store.path(of: digest), O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError("open", path) }
        return fd
    }

    /// A manifest (`ManifestSource`), fetched unless it is in the store or staged.
    public func manifest(_ digest: Digest) throws -> [UInt8] {
        let path = try fetch(digest, .manifest)
        do {
            return try FileDescriptor.open(path, O_RDONLY).readAll()
        } catch let error as SystemError where error.errno == ENOENT {
            return try repository.store.read(digest)
        }
    }

    /// Fetches blobs in the given order on `connections` threads, skipping those already here.
    /// Returns the failures (those objects stay remote: a later open tries again).
    public func prefetch(_ blobs: [(digest: Digest, size: UInt64)], connections: Int) -> [any Error] {
        prefetch(blobs.map { ($0.digest, Kind.blob(size: $0.size)) }, connections: connections)
    }

    /// Fetches manifests on `connections` threads, skipping those already here; returns the failures.
    public func prefetchManifests(_ digests: [Digest], connections: Int) -> [any Error] {
        prefetch(digests.map { ($0, Kind.manifest) }, connections: connections)
    }

    private func prefetch(_ objects: [(digest: Digest, kind: Kind)], connections: Int) -> [any Error] {
        let missing = objects.filter { !repository.store.has($0.digest) }
        if missing.isEmpty { return [] }
        let next = Atomic<Int>(0)
        let failures = Mutex<[any Error]>([])
        DispatchQueue.concurrentPerform(iterations: min(connections, missing.count)) { _ in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < missing.count else { return }
                do {
                    _ = try fetch(missing[index].digest, missing[index].kind)
                } catch {
                    failures.withLock { $0.append(error) }
                }
            }
        }
        return failures.withLock { $0 }
    }

    /// The blobs beneath the trees `roots` that the store lacks, with their sizes, fetching the
    /// missing trees on the way, a level at a time.
    public func missingBlobs(under roots: [Digest], connections: Int) throws -> [Digest: UInt64] {
        try repository.store.missingBlobs(under: roots) { level in
            // A tree that failed here is tried once more, and its error thrown, as it is read.
            _ = prefetchManifests(level, connections: connections)
            return try level.map { try Tree(decoding: try manifest($0), what: "tree \($0) from \(fetcher.location)") }
        }
    }

    /// What an object is, which decides how it is downloaded: a blob streams to a file of a known size;
    /// a manifest (a tree, a path list) is small and comes into memory.
    private enum Kind { case blob(size: UInt64), manifest }

    /// Where the object can be read: the store's file, or the staged one until its commit moves it there.
    private func fetch(_ digest: Digest, _ kind: Kind) throws -> String {
        let final = repository.store.path(of: digest)
        if repository.store.has(digest) { return final }
        if let staged = pending.withLock({ $0.staged[digest] }) { return staged }
        let (flight, isLeader) = flights.withLock { flights -> (Flight, Bool) in
            if let running = flights[digest] { return (running, false) }
            let started = Flight()
            flights[digest] = started
            return (started, true)
        }
        guard isLeader else { return try flight.wait() }
        let outcome = Result { () throws -> String in
            // Landed between the checks above and taking the flight.
            if repository.store.has(digest) { return final }
            if let staged = pending.withLock({ $0.staged[digest] }) { return staged }
            return try download(digest, kind)
        }
        flights.withLock { _ = $0.removeValue(forKey: digest) }
        flight.finish(outcome)
        return try outcome.get()
    }

    /// Downloads and verifies an object, stages it for the next commit, and returns where it is staged.
    private func download(_ digest: Digest, _ kind: Kind) throws -> String {
        let box = idle.withLock { $0.popLast() } ?? ClientBox(HTTPClient(location: fetcher.location, trust: fetcher.trust))
        enum Verified { case file(String), bytes([UInt8]) }
        let verified: Verified
        switch kind {
        case .blob(let size):
            verified = .file(try fetcher.download(digest, size: size, client: box.client) { _, bytes in _ = fetchedBytes.add(bytes, ordering: .relaxed) })
        case .manifest:
            let bytes = try fetcher.manifest(digest, client: box.client)
            fetchedBytes.add(bytes.count, ordering: .relaxed)
            verified = .bytes(bytes)
        }
        fetchedObjects.add(1, ordering: .relaxed)
        // A client whose transfer failed is dropped with its connection; a good one is kept.
        idle.withLock { if $0.count < Self.idleLimit { $0.append(box) } }
        let (staged, scheduleCommit) = try pending.withLock { pending throws -> (String, Bool) in
            if pending.batch == nil { pending.batch = try repository.store.beginBatch() }
            switch verified {
            case .file(let path): try pending.batch!.adopt(fileAt: path, as: digest)
            case .bytes(let bytes): try pending.batch!.put(bytes)
            }
            // Not staged: the store had it already.
            let staged = pending.batch!.stagedPath(of: digest) ?? repository.store.path(of: digest)
            pending.staged[digest] = staged
            defer { pending.commitScheduled = true }
            return (staged, !pending.commitScheduled)
        }
        if scheduleCommit { DispatchQueue.global().asyncAfter(deadline: .now() + Self.commitDelay) { self.commitPending() } }
        return staged
    }

    /// Makes everything staged so far durable in the store, after any commit under way: what was
    /// fetched before the call is in the store when it returns.
    public func commitStaged() { commitPending() }

    /// `commitStaged` for every mirror, for a process about to exit (its scheduled commits would not run).
    public static func commitAllStaged() {
        for remote in instances.withLock({ Array($0.values) }) { remote.commitStaged() }
    }

    /// Makes the staged objects durable in the store, together, one commit at a time. Readers holding
    /// a staged path find the object in the store once it has moved.
    private func commitPending() {
        committing.withLock { _ in
            let (batch, digests) = pending.withLock { pending in
                defer {
                    pending.batch = nil
                    pending.commitScheduled = false
                }
                return (pending.batch, Array(pending.staged.keys))
            }
            do {
                try batch?.commit()
            } catch {
                FileHandle.standardError.write(Data("strata: committing \(digests.count) fetched objects to \(repository.path) failed (they are fetched again when next opened): \(error)\n".utf8))
            }
            pending.withLock { pending in for digest in digests { pending.staged[digest] = nil } }
        }
    }
}

/// One download that other threads may be waiting on.
private final class Flight: @unchecked Sendable {
    private let condition = NSCondition()
    private var outcome: Result<String, any Error>?

    func finish(_ outcome: Result<String, any Error>) {
        condition.lock()
        self.outcome = outcome
        condition.broadcast()
        condition.unlock()
    }

    /// Where the object can be read, once the download ends.
    func wait() throws -> String {
        condition.lock()
        while outcome == nil { condition.wait() }
        let outcome = outcome!
        condition.unlock()
        return try outcome.get()
    }
}

/// An HTTP client parked between fetches. A client is used by one thread at a time: it is taken out
/// of the idle list before use and put back after.
private final class ClientBox: @unchecked Sendable {
    let client: HTTPClient
    init(_ client: HTTPClient) { self.client = client }
}
