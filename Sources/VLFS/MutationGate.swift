#if canImport(Glibc)
import Glibc
#endif

/// Changes to a VLFS pass the gate together; a snapshot or a reset closes it to see the private layer
/// hold still. A reader-writer lock: uncontended, passing it costs two atomic operations.
public final class MutationGate: @unchecked Sendable {
    // pthread_rwlock_t must not move, so it lives on the heap for the gate's life.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

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

    /// Runs `body` while no change runs.
    public func closed<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
