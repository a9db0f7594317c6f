import Foundation
import Synchronization
import StrataHTTP
import StrataStore

/// Objects of a served repository fetched one at a time, as a lazily mounted VLFS opens them: each
/// is downloaded, verified against its digest and committed to the mirror before the open goes on.
///
/// Concurrent requests for one object share one download (the later ones wait for the first), and
/// a background `prefetch` goes through the same door, so the daemon never downloads an object twice
/// or writes one partial file from two threads. Connections are kept between fetches, a few at a
/// time. There is one instance per mirror in a process (`for`), so every stack a live update builds
/// shares it.
public final class RemoteObjects: Sendable {
    public let repository: Repository
    private let fetcher: ObjectFetcher
    private let idle = Mutex<[ClientBox]>([])
    private let flights = Mutex<[Digest: Flight]>([:])
    private let fetchedObjects = Atomic<Int>(0)
    private let fetchedBytes = Atomic<Int>(0)

    /// Connections kept open between fetches.
    static let idleLimit = 8

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

    /// Makes a blob of `size` bytes local, downloading it unless it is in the store already or another
    /// thread is downloading it (then waits for that download and shares its outcome).
    public func fetch(_ digest: Digest, size: UInt64) throws {
        if repository.store.has(digest) { return }
        let (flight, isLeader) = flights.withLock { flights -> (Flight, Bool) in
            if let running = flights[digest] { return (running, false) }
            let started = Flight()
            flights[digest] = started
            return (started, true)
        }
        guard isLeader else { return try flight.wait() }
        var failure: (any Error)?
        do {
            // Landed between the check above and taking the flight.
            if !repository.store.has(digest) { try download(digest, size: size) }
        } catch {
            failure = error
        }
        flights.withLock { _ = $0.removeValue(forKey: digest) }
        flight.finish(failure)
        if let failure { throw failure }
    }

    /// Fetches blobs in the given order on `connections` threads, skipping those already local.
    /// Returns the failures (the objects stay remote: a later open tries again).
    public func prefetch(_ blobs: [(digest: Digest, size: UInt64)], connections: Int) -> [any Error] {
        let missing = blobs.filter { !repository.store.has($0.digest) }
        if missing.isEmpty { return [] }
        let next = Atomic<Int>(0)
        let failures = Mutex<[any Error]>([])
        DispatchQueue.concurrentPerform(iterations: min(connections, missing.count)) { _ in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < missing.count else { return }
                do {
                    try fetch(missing[index].digest, size: missing[index].size)
                } catch {
                    failures.withLock { $0.append(error) }
                }
            }
        }
        return failures.withLock { $0 }
    }

    private func download(_ digest: Digest, size: UInt64) throws {
        let box = idle.withLock { $0.popLast() } ?? ClientBox(HTTPClient(location: fetcher.location, trust: fetcher.trust))
        try fetcher.blob(digest, size: size, client: box.client) { _, bytes in _ = fetchedBytes.add(bytes, ordering: .relaxed) }
        fetchedObjects.add(1, ordering: .relaxed)
        // A client whose transfer failed is dropped with its connection; a good one is kept.
        idle.withLock { if $0.count < Self.idleLimit { $0.append(box) } }
    }
}

/// One download that other threads may be waiting on.
private final class Flight: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    private var failure: (any Error)?

    func finish(_ error: (any Error)?) {
        condition.lock()
        done = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    func wait() throws {
        condition.lock()
        while !done { condition.wait() }
        let failure = failure
        condition.unlock()
        if let failure { throw failure }
    }
}

/// An HTTP client parked between fetches. A client is used by one thread at a time: it is taken out
/// of the idle list before use and put back after.
private final class ClientBox: @unchecked Sendable {
    let client: HTTPClient
    init(_ client: HTTPClient) { self.client = client }
}
