import CFuse3
import CURing
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// FUSE over io_uring (Linux 6.14+, module parameter `enable_uring`): the kernel puts requests in
/// entries the daemon registered, one queue per possible CPU, and takes each reply with the command
/// that also fetches the next request: one system call per request where /dev/fuse takes a read and a
/// write. libfuse 3.14 does not speak it, so each entry has a thread of its own that rebuilds the
/// request as /dev/fuse would have handed it and runs it through the session
/// (`fuse_session_process_buf`, which calls the operations), and the session's custom I/O hands the
/// reply, which libfuse writes for /dev/fuse, back to the entry (`takeReply`). The session's own loop
/// keeps reading /dev/fuse: INIT, FORGET and INTERRUPT still come that way, and every request if the
/// kernel refuses the ring.
///
/// Life: `prepare` at mount makes the entries and their threads; the custom I/O asks for the ring in
/// the INIT reply (`offer`) if they are ready and then lets the threads register (`start`); `stop`
/// after unmount, when the kernel has ended every entry's command, joins them.
final class FuseRing: Sendable {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"
    /// Requests one queue serves at once: a request waiting on the disk (fsync) does not hold the others.
    static let entriesPerQueue = 4
    /// What an entry's command ends with once the connection is gone (unmount, abort).
    static let connectionEnded: Set<Int32> = [ENOTCONN, ECONNABORTED, ECANCELED, ENODEV]
    /// libfuse 3.14 sets max_write to at most 1 MiB (256 pages), which bounds every payload.
    static let payloadSize = 1 << 20

    /// One registered entry and the request it holds now (its unique, 0 between requests), which the
    /// custom I/O matches replies against.
    private final class Entry: Sendable {
        nonisolated(unsafe) let buffers: UnsafeMutablePointer<strata_fuse_ring_entry>
        let inFlight = Atomic<UInt64>(0)
        /// Whether its thread could take its io_uring.
        let enabled = Atomic<Bool>(false)
        init(_ buffers: UnsafeMutablePointer<strata_fuse_ring_entry>) { self.buffers = buffers }
    }

    /// `struct fuse_session *`: the threads run requests through it until `stop`.
    nonisolated(unsafe) private let session: OpaquePointer
    private let entries: [Entry]
    /// Requests answered over the ring since mount.
    let served = Atomic<Int>(0)
    /// Whether replies may belong to ring entries: from `start` until the kernel refuses the ring.
    let serving = Atomic<Bool>(false)
    private let go = Atomic<Bool>(false)
    private let released = DispatchSemaphore(value: 0)
    private let finished = DispatchGroup()
    private let failureTold = Atomic<Bool>(false)

    /// The ring for `session` on /dev/fuse `device`, its threads waiting for `start`; or why not.
    static func prepare(session: OpaquePointer, device: Int32) -> Result<FuseRing, MountError> {
        guard let enabled = try? String(contentsOfFile: parameter, encoding: .utf8) else {
            return .failure(MountError("FUSE over io_uring: this kernel has no \(parameter); serving /dev/fuse"))
        }
        guard enabled.hasPrefix("Y") else {
            return .failure(MountError("FUSE over io_uring: \(parameter) is N (root can write Y); serving /dev/fuse"))
        }
        var made: [Entry] = []
        for queue in 0..<possibleCPUs() {
            for _ in 0..<entriesPerQueue {
                guard let buffers = strata_fuse_ring_entry_create(device, UInt16(queue), payloadSize) else {
                    let reason = String(cString: strerror(errno))
                    made.forEach { strata_fuse_ring_entry_destroy($0.buffers) }
                    return .failure(MountError("FUSE over io_uring: cannot set up an io_uring (\(reason)); serving /dev/fuse"))
                }
                made.append(Entry(buffers))
            }
        }
        let ring = FuseRing(session: session, entries: made)
        let ready = DispatchSemaphore(value: 0)
        for entry in made { ring.launch(entry, ready: ready) }
        for _ in made { ready.wait() }
        guard made.allSatisfy({ $0.enabled.load(ordering: .relaxed) }) else {
            ring.stop()
            return .failure(MountError("FUSE over io_uring: cannot enable an io_uring; serving /dev/fuse"))
        }
        return .success(ring)
    }

    private init(session: OpaquePointer, entries: [Entry]) {
        self.session = session
        self.entries = entries
    }

    /// The number of queues the kernel makes: one per possible CPU (`0-3` in sysfs: 4).
    private static func possibleCPUs() -> Int {
        let range = (try? String(contentsOfFile: "/sys/devices/system/cpu/possible", encoding: .utf8)) ?? ""
        let last = range.split(whereSeparator: { $0 == "-" || $0 == "," || $0 == "\n" }).last.flatMap { Int($0) }
        return (last ?? (sysconf(Int32(_SC_NPROCESSORS_CONF)) - 1)) + 1
    }

    private func launch(_ entry: Entry, ready: DispatchSemaphore) {
        finished.enter()
        let thread = Thread { [self] in
            defer { finished.leave() }
            entry.enabled.store(strata_fuse_ring_entry_enable(entry.buffers) == 0, ordering: .relaxed)
            ready.signal()
            released.wait()
            if go.load(ordering: .relaxed) { serve(entry) }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Asks for the ring in libfuse's INIT reply if every entry can hold what the connection may send.
    func offer(_ vector: UnsafeMutablePointer<iovec>?, _ count: Int32) -> Bool {
        strata_fuse_init_reply_request_ring(vector, count, FuseRing.payloadSize) == 1
    }

    /// After the INIT reply is written: the threads register their entries if the ring was asked for
    /// (`offered`), and end otherwise.
    func start(offered: Bool) {
        go.store(offered, ordering: .relaxed)
        serving.store(offered, ordering: .relaxed)
        if !offered { tell("FUSE over io_uring: not offered at INIT; serving /dev/fuse") }
        for _ in entries { released.signal() }
    }

    /// After unmount: lets threads that never started end, waits for the others (whose commands the
    /// kernel ends with the connection), and frees the entries.
    func stop() {
        if !go.load(ordering: .relaxed) {
            for _ in entries { released.signal() }
        }
        guard finished.wait(timeout: .now() + 10) == .success else {
            tell("FUSE over io_uring: ring threads still running at exit")
            return
        }
        entries.forEach { strata_fuse_ring_entry_destroy($0.buffers) }
    }

    /// Registers the entry, then serves the requests the kernel puts in it until the connection ends.
    private func serve(_ entry: Entry) {
        var result = strata_fuse_ring_entry_send(entry.buffers, UInt32(STRATA_FUSE_URING_REGISTER), 0)
        // An entry that never got a request ends with the connection, as a registration that failed.
        if result < 0, !FuseRing.connectionEnded.contains(-result) {
            // The kernel now sends every request through /dev/fuse.
            serving.store(false, ordering: .relaxed)
            tell("FUSE over io_uring: the kernel refused the ring (\(String(cString: strerror(-result)))); serving /dev/fuse")
            return
        }
        while true {
            if result < 0 {
                if FuseRing.connectionEnded.contains(-result) { return }
                // The kernel dropped this entry (a commit it had no request for): register it anew.
                tell("FUSE over io_uring: an entry failed (\(String(cString: strerror(-result)))); registering it again")
                result = strata_fuse_ring_entry_send(entry.buffers, UInt32(STRATA_FUSE_URING_REGISTER), 0)
                if result < 0 { return }
                continue
            }
            let unique = strata_fuse_ring_entry_commit_id(entry.buffers)
            entry.inFlight.store(unique, ordering: .relaxed)
            var length = 0
            if let request = strata_fuse_ring_entry_request(entry.buffers, &length) {
                served.add(1, ordering: .relaxed)
                RawRequest.inspect(UnsafeRawBufferPointer(start: request, count: length))
                var buffer = fuse_buf(size: length, flags: fuse_buf_flags(rawValue: 0), mem: request, fd: -1, pos: 0)
                fuse_session_process_buf(session, &buffer)
            }
            // Every request taken from the ring must be answered in it, or the entry is lost; the
            // operations reply before they return, so one with no reply yet (FORGET, or a malformed
            // request) gets an error.
            if entry.inFlight.exchange(0, ordering: .relaxed) == unique {
                strata_fuse_ring_entry_reply_error(entry.buffers, EIO)
            }
            result = strata_fuse_ring_entry_send(entry.buffers, UInt32(STRATA_FUSE_URING_COMMIT_AND_FETCH), unique)
        }
    }

    private func entry(answering unique: UInt64) -> Entry? {
        guard unique != 0, serving.load(ordering: .relaxed) else { return nil }
        return entries.first { $0.inFlight.load(ordering: .relaxed) == unique }
    }

    /// Takes a reply libfuse writes (fuse_out_header first) into the entry whose request it answers;
    /// nil for one that is not a ring request's (a notification, or a reply to a /dev/fuse request).
    func takeReply(_ vector: UnsafePointer<iovec>?, _ count: Int32) -> Int? {
        guard count > 0, let vector, vector[0].iov_len >= 16, let header = vector[0].iov_base,
              let entry = entry(answering: strata_fuse_reply_unique(header)) else { return nil }
        let written = strata_fuse_ring_entry_take_reply(entry.buffers, vector, count)
        if written >= 0 { entry.inFlight.store(0, ordering: .relaxed) }
        return written
    }

    /// A reply libfuse spliced into `pipe` (fuse_out_header, then `length` bytes in all): into the
    /// entry it answers, else written to /dev/fuse `device`. Returns what splice would.
    func takeSplicedReply(pipe: Int32, length: Int, device: Int32) -> Int {
        var header = (UInt64(0), UInt64(0))
        guard length >= 16, withUnsafeMutableBytes(of: &header, { strata_read_fully(pipe, $0.baseAddress, 16) }) == 0 else { return -1 }
        return withUnsafeBytes(of: &header) { bytes in
            guard let entry = entry(answering: strata_fuse_reply_unique(bytes.baseAddress)) else {
                return strata_fuse_forward_spliced_reply(bytes.baseAddress, pipe, length - 16, device)
            }
            let taken = strata_fuse_ring_entry_take_spliced_reply(entry.buffers, bytes.baseAddress, pipe, length - 16)
            if taken >= 0 { entry.inFlight.store(0, ordering: .relaxed) }
            return taken
        }
    }

    /// Says once, on the daemon's log, why the ring is not (or no longer wholly) in use.
    private func tell(_ message: String) {
        guard !failureTold.exchange(true, ordering: .relaxed) else { return }
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
