import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The shared files an appliance opens first after its VLFS mounts, in the order it opens them: what
/// a lazily mounted VLFS fetches first at its next mount, in bulk, before the appliance asks.
///
/// Recording stops at `limit` files or when the daemon says the start is over (`finish`); after that
/// an open costs one relaxed atomic load here.
public final class FirstOpens: Sendable {
    public static let limit = 4096
    private let recording = Atomic<Bool>(true)
    private let state = Mutex<(seen: Set<String>, order: [String])>(([], []))

    public init() {}

    func note(_ path: String) {
        guard recording.load(ordering: .relaxed) else { return }
        let full = state.withLock { state -> Bool in
            if state.seen.insert(path).inserted { state.order.append(path) }
            return state.order.count >= Self.limit
        }
        if full { recording.store(false, ordering: .relaxed) }
    }

    /// Stops recording and returns the paths recorded, first opened first.
    public func finish() -> [String] {
        recording.store(false, ordering: .relaxed)
        return state.withLock { $0.order }
    }

    /// Writes `paths` to `file` atomically, one NUL-terminated path each (a name may hold a newline).
    public static func save(_ paths: [String], to file: String) throws {
        try AtomicFile.write(Array(paths.map { $0 + "\0" }.joined().utf8), to: file, mode: 0o600)
    }

    /// The paths a VLFS's last mount recorded; none when it recorded nothing (or the file is unreadable:
    /// this is a hint for prefetching, never a reason to refuse a mount).
    public static func load(_ file: String) -> [String] {
        guard let fd = try? FileDescriptor.open(file, O_RDONLY), let bytes = try? fd.readAll(limit: limit * (Int(PATH_MAX) + 1)) else { return [] }
        return bytes.split(separator: 0).prefix(limit).map { String(decoding: $0, as: UTF8.self) }
    }
}
