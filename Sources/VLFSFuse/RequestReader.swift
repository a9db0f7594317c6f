import CFuse3
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads FUSE requests so that a round trip, in the common case, wakes no sleeping thread: one worker
/// at a time, the reader, takes requests off /dev/fuse, answers each on its own thread (libfuse's
/// `fuse_session_loop_mt` processes what a worker's `read` returns on that worker) and reads again.
/// Between requests it spins on non-blocking reads for up to `spin` before it sleeps in poll: where
/// idle CPUs halt, as in a VM, waking a sleeping thread costs more than most requests (see
/// docs/BENCHMARKS.md, issue 14, "One spinning reader").
///
/// The other workers stay off the device, so no request wakes a crowd. One of them, the watcher,
/// looks every `tick` whether the reader still answers the request it answered at the previous look,
/// and then takes the role over: a slow request (a lazy fetch, an fsync, a blocked open) holds up the
/// others for at most two ticks, and the worker that answered it joins the others when done. The
/// rest wait on their semaphores. Once the reader has slept in poll for `idleTicks` looks in a row,
/// the watcher waits untimed too, and the reader wakes it when a request comes: an idle mount costs
/// no CPU. Every wait is a cancellation point with no lock held (libfuse cancels its workers at exit).
final class RequestReader: @unchecked Sendable {
    /// The reader's state, in one word so that only one thread can win the role: the owner (a worker's
    /// index + 1; 0 before the first), the number of requests read, and the phase.
    private let state = Atomic<UInt64>(0)
    private let spin: UInt64
    private let tick = timespec(tv_sec: 0, tv_nsec: 1_000_000)
    private let idleTicks = 20
    private let threads = Mutex(Threads())
    /// Set, besides `Threads.watcherParked`, for the reader's lock-free look after a sleep.
    private let watcherParked = Atomic<Bool>(false)
    private let exiting = Atomic<Bool>(false)
    /// Each worker's index in `Threads.semaphores`, plus one.
    private let workerKey: pthread_key_t

    private enum Phase: UInt64 {
        case reading = 0, sleeping = 1, processing = 2
    }

    private struct Threads {
        var semaphores: [UnsafeMutablePointer<sem_t>] = []
        var watcher: UInt64?
        var watcherParked = false
        var parked: [UInt64] = []
        var exiting = false
    }

    /// Makes the session's descriptor non-blocking; `spinMicroseconds` bounds each spin.
    init(descriptor: Int32, spinMicroseconds: UInt32) {
        spin = UInt64(spinMicroseconds) * 1_000
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-specific key left")
        workerKey = key
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        threads.withLock { $0.semaphores.forEach { sem_destroy($0); $0.deallocate() } }
        pthread_key_delete(workerKey)
    }

    /// libfuse's custom `read`: the next request in `buffer`, its length; or -1 with errno.
    func read(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int) -> Int {
        let me = worker()
        let word = state.load(ordering: .acquiring)
        // The reader back from answering its request keeps the role, unless the watcher took it.
        if Self.owner(word) == me, Self.phase(word) == .processing,
           state.compareExchange(expected: word, desired: Self.word(me, Self.sequence(word), .reading), ordering: .acquiringAndReleasing).exchanged {
            return readRequests(me, Self.sequence(word), descriptor, buffer, length)
        }
        return follow(me, descriptor, buffer, length)
    }

    /// Reads as the reader until a request comes (then marks it being answered) or the device fails.
    private func readRequests(_ me: UInt64, _ sequence: UInt64, _ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int) -> Int {
        var deadline = Self.now() &+ spin
        while true {
            let count = Glibc.read(descriptor, buffer, length)
            if count >= 0 {
                state.store(Self.word(me, sequence &+ 1, .processing), ordering: .releasing)
                return count
            }
            let error = errno
            switch error {
            case EAGAIN:
                if Self.now() < deadline {
                    strata_cpu_relax()
                    continue
                }
                state.store(Self.word(me, sequence, .sleeping), ordering: .sequentiallyConsistent)
                var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&waiting, 1, -1)
                state.store(Self.word(me, sequence, .reading), ordering: .sequentiallyConsistent)
                if watcherParked.load(ordering: .sequentiallyConsistent) { wakeWatcher() }
                deadline = Self.now() &+ spin
            case EINTR, ENOENT:
                continue  // a signal, or a request interrupted before it was read
            default:
                stop()
                errno = error
                return count
            }
        }
    }

    /// A worker without the role: takes it if nobody has it yet, else watches if nobody watches, else
    /// waits to be woken; until it reads, or the device is gone.
    private func follow(_ me: UInt64, _ descriptor: Int32, _ buffer: UnsafeMutableRawPointer, _ length: Int) -> Int {
        enum Next { case read(UInt64), watch, wait(UnsafeMutablePointer<sem_t>), exit }
        while true {
            let next = threads.withLock { threads -> Next in
                if threads.exiting { return .exit }
                let word = state.load(ordering: .acquiring)
                if Self.owner(word) == 0,
                   state.compareExchange(expected: word, desired: Self.word(me, 0, .reading), ordering: .acquiringAndReleasing).exchanged {
                    return .read(0)
                }
                if threads.watcher == nil {
                    threads.watcher = me
                    return .watch
                }
                threads.parked.append(me)
                return .wait(threads.semaphores[Int(me - 1)])
            }
            switch next {
            case .read(let sequence):
                return readRequests(me, sequence, descriptor, buffer, length)
            case .watch:
                if let sequence = watch(me) { return readRequests(me, sequence, descriptor, buffer, length) }
            case .wait(let semaphore):
                while sem_wait(semaphore) != 0 && errno == EINTR {}
            case .exit:
                errno = ENODEV
                return -1
            }
        }
    }

    /// Looks at the reader every tick; takes the role over from a reader still answering the request
    /// it answered at the previous look and returns the sequence to read on, or nil when exiting.
    private func watch(_ me: UInt64) -> UInt64? {
        var seen = state.load(ordering: .acquiring)
        var idle = 0
        while true {
            var pause = tick
            _ = nanosleep(&pause, nil)
            if exiting.load(ordering: .acquiring) { return nil }
            let word = state.load(ordering: .acquiring)
            if word == seen, Self.phase(word) == .processing,
               state.compareExchange(expected: word, desired: Self.word(me, Self.sequence(word), .reading), ordering: .acquiringAndReleasing).exchanged {
                threads.withLock { threads in
                    threads.watcher = nil
                    if let next = threads.parked.popLast() { sem_post(threads.semaphores[Int(next - 1)]) }
                }
                return Self.sequence(word)
            }
            idle = word == seen && Self.phase(word) == .sleeping ? idle + 1 : 0
            seen = word
            if idle >= idleTicks {
                waitForRequest(me, while: word)
                idle = 0
                seen = state.load(ordering: .acquiring)
            }
        }
    }

    /// The watcher's untimed wait while the reader sleeps in `word`, until the reader wakes it.
    private func waitForRequest(_ me: UInt64, while word: UInt64) {
        let semaphore = threads.withLock { threads in
            threads.watcherParked = true
            return threads.semaphores[Int(me - 1)]
        }
        watcherParked.store(true, ordering: .sequentiallyConsistent)
        if state.load(ordering: .sequentiallyConsistent) != word || exiting.load(ordering: .acquiring) {
            // The reader woke meanwhile: withdraw, unless it already posted (then take that post).
            let posted = threads.withLock { threads in
                defer { threads.watcherParked = false }
                return !threads.watcherParked
            }
            watcherParked.store(false, ordering: .relaxed)
            if !posted { return }
        }
        while sem_wait(semaphore) != 0 && errno == EINTR {}
    }

    private func wakeWatcher() {
        threads.withLock { threads in
            guard threads.watcherParked, let watcher = threads.watcher else { return }
            threads.watcherParked = false
            watcherParked.store(false, ordering: .relaxed)
            sem_post(threads.semaphores[Int(watcher - 1)])
        }
    }

    /// The device is gone (unmounted, or the connection aborted): every waiting worker returns too.
    private func stop() {
        exiting.store(true, ordering: .releasing)
        threads.withLock { threads in
            threads.exiting = true
            threads.parked.forEach { sem_post(threads.semaphores[Int($0 - 1)]) }
            threads.parked.removeAll()
            if threads.watcherParked, let watcher = threads.watcher { sem_post(threads.semaphores[Int(watcher - 1)]) }
        }
    }

    /// This worker's index + 1, given at its first read.
    private func worker() -> UInt64 {
        if let known = pthread_getspecific(workerKey) { return UInt64(UInt(bitPattern: known)) }
        let index = threads.withLock { threads in
            let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
            sem_init(semaphore, 0, 0)
            threads.semaphores.append(semaphore)
            return UInt64(threads.semaphores.count)
        }
        pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: UInt(index)))
        return index
    }

    private static func word(_ owner: UInt64, _ sequence: UInt64, _ phase: Phase) -> UInt64 {
        owner << 48 | (sequence & (1 << 46 - 1)) << 2 | phase.rawValue
    }

    private static func owner(_ word: UInt64) -> UInt64 { word >> 48 }
    private static func sequence(_ word: UInt64) -> UInt64 { (word >> 2) & (1 << 46 - 1) }
    private static func phase(_ word: UInt64) -> Phase { Phase(rawValue: word & 3) ?? .reading }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
