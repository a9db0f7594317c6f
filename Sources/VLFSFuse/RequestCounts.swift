import Synchronization

/// FUSE requests that reached the daemon's operations since mount, by opcode: what each workload
/// costs in round trips. Counted on every request, so one relaxed atomic add and no lock. Requests
/// libfuse answers by itself (INIT, DESTROY, INTERRUPT, operations the daemon does not implement) are
/// not counted.
public final class RequestCounts: Sendable {
    /// The kernel's opcodes (`enum fuse_opcode`) of the requests the daemon answers. RENAME2 is
    /// counted as `rename`: libfuse hands both to one operation.
    public enum Operation: Int, CaseIterable, Sendable {
        case lookup = 1, forget, getattr, setattr, readlink, symlink
        case mknod = 8, mkdir, unlink, rmdir, rename, link, open, read, write, statfs, release
        case fsync = 20, setxattr, getxattr, listxattr, removexattr, flush
        case opendir = 27, readdir
        case fsyncdir = 30
        case access = 34, create
        case batchForget = 42, fallocate, readdirplus
        case lseek = 46, copyFileRange
    }

    private let counts: InlineArray<48, Atomic<Int>> = InlineArray { _ in Atomic(0) }

    init() {}

    func count(_ operation: Operation) { counts[operation.rawValue].add(1, ordering: .relaxed) }

    public subscript(_ operation: Operation) -> Int { counts[operation.rawValue].load(ordering: .relaxed) }

    /// The operations requested at least once, as `lookup:120,getattr:3` in opcode order (empty when none).
    public var summary: String {
        Operation.allCases.compactMap { self[$0] > 0 ? "\($0):\(self[$0])" : nil }.joined(separator: ",")
    }
}
