import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Changes to a VLFS pass the gate together; a snapshot or a reset closes it to see the private layer
/// hold still. A reader-writer lock: uncontended, passing it costs two atomic operations.
///
/// Writes can also wait outside the gate: with FUSE writeback caching, a write() that returned sits in
/// the kernel's page cache until the kernel sends it. Closing the gate first pushes those through
/// (`flushPendingWrites`), while the gate is still open for the WRITEs the push sends.
public final class MutationGate: @unchecked Sendable {
    // pthread_rwlock_t must not move, so it lives on the heap for the gate's life.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>
    /// Sends writes the kernel holds to the daemon and waits for them; set by the mount that caches them.
    private let pendingWrites = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// Runs a change; many may run at once.
    public func change<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Runs `body` while no change runs, after every write that returned before has reached the
    /// private layer. Never from a FUSE worker, nor while passing the gate: the flush waits for WRITEs.
    public func closed<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        flushPendingWrites()
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// Makes `flush` the way to push writes that returned to the private layer (see the type's comment).
    public func setWriteFlush(_ flush: @escaping @Sendable () -> Void) {
        pendingWrites.withLock { $0 = flush }
    }

    /// Pushes writes that returned but wait in a cache to the private layer, and waits until they are there.
    public func flushPendingWrites() {
        pendingWrites.withLock { $0 }?()
    }
}
