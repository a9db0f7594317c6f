import CFuse3
import StrataStore
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// How the kernel has each inode open, which decides how the next open of it is answered.
///
/// A shared file opened for reading is best served by passthrough: the kernel reads and maps the CAS
/// blob itself, from the blob's own page cache, as overlayfs reads its lower layers. The kernel refuses
/// to mix, on one inode, passthrough opens with opens it reads through this daemon ("cached" opens),
/// and passthrough opens on two different backing files. Such an open (a write that copied the file up
/// while readers hold the blob, or a live update that changed the file under them) is a `conflict`: the
/// file gets a new node id and the open fails with ESTALE, which makes the kernel look the path up again
/// and retry the open once, on a new inode; the readers keep the old one. With writeback caching the
/// same goes for cached opens of different files (`separatesFiles`): the kernel reads from the inode's
/// pages once they are up to date, so readers of the blob would see what a writer wrote to its copy.
final class KernelOpens: Sendable {
    enum Admission {
        case passthrough(backingID: Int32)
        case cached
        case conflict
    }

    private struct Modes {
        var backing: (id: Int32, blob: Digest)?
        var passthrough = 0
        var cached = 0
        /// The blob that the cached opens read (nil: the private file).
        var cachedBlob: Digest?
    }

    private let sessionDescriptor: Int32
    private let modes = Mutex<[UInt64: Modes]>([:])
    /// Off when not asked for, or once the kernel refused to register a backing file (it did not grant
    /// passthrough at INIT).
    private let passthroughWorks: Atomic<Bool>
    /// Shared files smaller than this are opened cached, their pages kept across opens: the kernel
    /// drops a passthrough file's atime after every read, so each stat that follows a read costs a
    /// GETATTR round trip, which for a small file outweighs what passthrough saves.
    private let passthroughMinimumSize: UInt64
    /// Whether cached opens of different files on one inode conflict (set under writeback caching).
    let separatesFiles = Atomic<Bool>(false)

    init(sessionDescriptor: Int32, passthrough: Bool, minimumSize: UInt64) {
        self.sessionDescriptor = sessionDescriptor
        passthroughWorks = Atomic(passthrough)
        passthroughMinimumSize = minimumSize
    }

    /// Whether a shared file of `size` bytes opened for reading would be passed through (as far as
    /// anyone can tell before its blob is registered).
    func passesThrough(size: UInt64) -> Bool {
        size >= passthroughMinimumSize && passthroughWorks.load(ordering: .relaxed)
    }

    /// Decides how to answer an open of `inode` that opened `file`, and counts it.
    func admit(_ inode: UInt64, _ file: Union.OpenFile) -> Admission {
        modes.withLock { modes in
            var current = modes[inode] ?? Modes()
            defer { modes[inode] = current }
            guard let blob = file.blob, passesThrough(size: file.size), current.cached == 0 else {
                if current.passthrough > 0 { return .conflict }
                if current.cached > 0, current.cachedBlob != file.blob, separatesFiles.load(ordering: .relaxed) { return .conflict }
                if current.cached == 0 { current.cachedBlob = file.blob }
                current.cached += 1
                return .cached
            }
            if let backing = current.backing {
                guard backing.blob == blob else { return .conflict }
                current.passthrough += 1
                return .passthrough(backingID: backing.id)
            }
            let id = strata_fuse_backing_open(sessionDescriptor, file.descriptor)
            guard id >= 0 else {
                // EPERM: passthrough was not negotiated; other failures (a blob store stacked too deep) are
                // per file, and the file is simply served through this daemon.
                let error = errno
                if error == EPERM || error == EOPNOTSUPP || error == ENOTTY,
                   passthroughWorks.exchange(false, ordering: .relaxed) {
                    // Goes to the daemon's log: the one sign that reads cost more than they should.
                    let message = "strata: the kernel did not grant FUSE passthrough (\(String(cString: strerror(error)))): shared files are served through the daemon\n"
                    _ = message.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
                }
                current.cached += 1
                return .cached
            }
            current.backing = (id, blob)
            current.passthrough += 1
            return .passthrough(backingID: id)
        }
    }

    /// Counts an open that `admit` let through as closed (or never answered); the last passthrough
    /// open of an inode unregisters its backing file.
    func release(_ inode: UInt64, passthrough: Bool) {
        modes.withLock { modes in
            guard var current = modes[inode] else { return }
            if passthrough {
                current.passthrough -= 1
                if current.passthrough == 0, let backing = current.backing {
                    _ = strata_fuse_backing_close(sessionDescriptor, backing.id)
                    current.backing = nil
                }
            } else {
                current.cached -= 1
            }
            modes[inode] = current.passthrough == 0 && current.cached == 0 ? nil : current
        }
    }

    /// File handles carry the descriptor in their low 32 bits and this bit for passthrough opens.
    static let passthroughHandle: UInt64 = 1 << 32
}
