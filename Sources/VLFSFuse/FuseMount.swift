import CFuse3
import CLinux
import Foundation
import StrataStore
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// The libfuse low-level adapter over a `Union`. The only file that sees libfuse's C types.
///
/// Caching contract. Everything visible changes only through this daemon, so the kernel may cache
/// entries, negative entries and attributes for a day; the daemon invalidates explicitly what changes
/// behind the kernel's back (a live update of the layer stack, a revert, a reset). With writeback
/// caching (`cachesWrites`) the kernel also keeps written data, sizes and times of regular files: the gate
/// flushes them before it closes, and a file changed behind the kernel gets a new node id, since the
/// kernel never takes a cached regular file's size from the daemon again. Shared files opened
/// for reading are handed to the kernel as passthrough files on their CAS blobs, which it then reads
/// and maps itself (`KernelOpens`); otherwise they are opened with `keep_cache`, since a blob never
/// changes and its pages may survive across opens. Reads that reach the daemon are answered from file
/// descriptors with `fuse_reply_data`, which splices. Directories are opened by the kernel without
/// asking, and their listings cached by it. Every failure becomes exactly one `fuse_reply_err`, in
/// `reply(_:_:)`.
public final class FuseMount: Sendable {
    public let union: Union
    public let mountpoint: String
    /// `struct fuse_session *`, alive from mount to `close()`. libfuse's notify calls are safe from
    /// any thread, which is all that other threads do with it.
    nonisolated(unsafe) private let session: OpaquePointer
    /// How the kernel has each inode open: passthrough or through this daemon.
    let opens: KernelOpens
    /// Directory listings being read, by directory inode, in cookie order: taken when a reader starts at
    /// offset 0, used for the offsets that follow, dropped when a reader reaches the end, and the most
    /// recent few kept at most. The kernel opens directories without asking (see `opendir`), so there
    /// is no handle to hang a listing on; instead an offset is the cookie of the last entry returned, a
    /// hash of its name (as ext4 does), and a reader resumes after it in whatever listing is current:
    /// readers that interleave, or a directory that changes between calls, never make an unchanged
    /// entry show twice or not at all.
    let listings = Mutex(DirectoryListings())
    /// Negotiated at INIT: the kernel opens directories without asking once opendir says ENOSYS.
    let opensDirectoriesItself = Atomic<Bool>(false)
    /// Requests answered, by opcode (the `statistics` control request and the daemon's log report them).
    public let requests = RequestCounts()
    /// FUSE over io_uring, when asked for and the kernel allows it (`FuseRing`).
    private let ring: FuseRing?
    /// Whether to ask for writeback caching at INIT.
    let asksToCacheWrites: Bool
    /// Negotiated at INIT: writes land in the kernel's page cache and reach the daemon later, merged
    /// (FUSE_CAP_WRITEBACK_CACHE); the kernel keeps regular files' sizes and times.
    let cachesWrites = Atomic<Bool>(false)
    /// The kernel opens regular files itself ("no open", see `init`).
    let kernelOpensFiles: Bool
    static let timeout = 86_400.0
    /// Shared files below this are cached rather than passed through: a warm `tar` of small files costs
    /// two round trips per file instead of three (see docs/BENCHMARKS.md, issue 14), while libraries and
    /// programs, mostly larger, still share their blobs' pages across mounts.
    public static let defaultPassthroughMinimumSize: UInt64 = 128 << 10

    /// Mounts `union` at `mountpoint`. The filesystem answers once `run()` is called. `use` sets who may
    /// use it and whether setuid bits and device nodes work (see `MountUse`); an inspection mount is
    /// read-only, the kernel refusing every change with EROFS before it reaches the union.
    /// With `passthrough`, shared files of at least `passthroughMinimumSize` bytes opened for reading are
    /// read by the kernel straight from their blobs, where the kernel supports it (see `KernelOpens`).
    /// With `ioUring`, requests come over FUSE's io_uring queues where the kernel allows it (see
    /// `FuseRing`); `log` says why not. With `writebackCache`, the kernel caches writes (`cachesWrites`)
    /// and passes no file through: Linux does not combine the two (`process_init_reply`).
    /// With `kernelOpensFiles`, the first OPEN of a regular file is answered ENOSYS, after which the
    /// kernel opens regular files itself and sends neither OPEN nor RELEASE (FUSE's "no open"): a
    /// warm read of a small file costs no round trip. Every file then keeps its pages across opens,
    /// requests on files name only the inode (`withDescriptor`), and nothing is passed through.
    /// With `spinWaitMicroseconds` above 0 (and no ring), one worker at a time reads /dev/fuse and spins
    /// that long for the next request before it sleeps (`RequestReader`).
    public init(union: Union, mountpoint: String, fsName: String, use: MountUse, passthrough: Bool = true,
                passthroughMinimumSize: UInt64 = FuseMount.defaultPassthroughMinimumSize, ioUring: Bool = false, writebackCache: Bool = false,
                kernelOpensFiles: Bool = false, spinWaitMicroseconds: UInt32 = 0, log: (String) -> Void = { _ in }) throws {
        self.union = union
        self.mountpoint = mountpoint
        asksToCacheWrites = writebackCache
        let passthrough = passthrough && !writebackCache
        self.kernelOpensFiles = kernelOpensFiles
        union.descriptors.keepsUnlinkedFiles.store(kernelOpensFiles, ordering: .relaxed)
        // The kernel applied the caller's umask to every mode it sends; the daemon's own must not apply again.
        umask(0)
        let options = "fsname=\(fsName),subtype=strata,default_permissions,\(use.options)"
        let arguments = ["strata", "-o", options]
        var ops = FuseMount.operations()
        var made: OpaquePointer?
        // The session needs its userdata before `self` is complete: hand it a box filled in below.
        let box = MountBox()
        let unretained = Unmanaged<MountBox>.passRetained(box)
        var cArguments = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        cArguments.withUnsafeMutableBufferPointer { buffer in
            var args = fuse_args(argc: Int32(buffer.count), argv: buffer.baseAddress, allocated: 0)
            made = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, unretained.toOpaque())
            fuse_opt_free_args(&args)
        }
        guard let made else {
            unretained.release()
            throw FSError(EINVAL)
        }
        session = made
        guard fuse_session_mount(session, mountpoint) == 0 else {
            fuse_session_destroy(session)
            throw MountError("cannot mount at \(mountpoint) (is it an existing directory, not already mounted, and is /dev/fuse available?)")
        }
        opens = KernelOpens(sessionDescriptor: fuse_session_fd(session), passthrough: passthrough, minimumSize: passthroughMinimumSize)
        switch ioUring ? FuseRing.prepare(session: session, device: fuse_session_fd(session)) : nil {
        case .success(let prepared): ring = prepared
        case .failure(let reason): ring = nil; log(reason.description)
        case nil: ring = nil
        }
        box.passthrough = passthrough
        box.ring = ring
        if ring == nil, spinWaitMicroseconds > 0 {
            box.reader = RequestReader(descriptor: fuse_session_fd(session), spinMicroseconds: spinWaitMicroseconds)
        }
        box.mount = self
        FuseMount.installCustomIO(session)
        if writebackCache {
            union.gate.setWriteFlush { [weak self] in
                if let self, cachesWrites.load(ordering: .relaxed) { FuseMount.sync(self.mountpoint) }
            }
        }
    }

    /// Sends every write the kernel caches for the mount at `mountpoint` and waits for them: syncfs on
    /// its root, which the kernel answers by writing the dirty pages back, each as a WRITE to the daemon.
    private static func sync(_ mountpoint: String) {
        let root = open(mountpoint, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { return }
        defer { Glibc.close(root) }
        var filesystem = statfs()
        guard fstatfs(root, &filesystem) == 0, filesystem.f_type == FuseMount.superMagic else { return }
        _ = syncfs(root)
    }

    /// FUSE_SUPER_MAGIC: a descriptor of a FUSE mount (syncfs elsewhere would flush nothing of ours).
    private static let superMagic = 0x6573_5546

    /// The flags to open the private file with for an open or create with the kernel's `flags`. With
    /// writeback caching the kernel reads pages around partial writes, even through a write-only
    /// descriptor, and sends every write at an offset it chose (its idea of the end for O_APPEND).
    func privateOpenFlags(_ flags: Int32) -> Int32 {
        guard cachesWrites.load(ordering: .relaxed) else { return flags }
        return flags & O_ACCMODE == O_WRONLY ? (flags & ~(O_ACCMODE | O_APPEND)) | O_RDWR : flags & ~O_APPEND
    }

    /// libfuse 3.14 predates passthrough, FUSE_HANDLE_KILLPRIV_V2 and FUSE over io_uring: its messages
    /// go through this I/O, which asks for them in its INIT reply (the first message it writes;
    /// passthrough and the ring only when wanted), reads requests through `RequestReader` where one
    /// spins, shows every request it reads to `RawRequest`, hands replies to ring requests to their
    /// entries, and otherwise does what libfuse does.
    private static func installCustomIO(_ session: OpaquePointer) {
        var io = fuse_custom_io()
        io.writev = { descriptor, vector, count, userdata in
            let box = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue()
            if let written = box.ring?.takeReply(vector, count) { return written }
            if !box.initAnswered.load(ordering: .relaxed) {
                box.initAnswered.store(true, ordering: .relaxed)
                _ = strata_fuse_init_reply_adjust(vector, count, box.passthrough ? 1 : 0)
                let offered = box.ring?.offer(vector, count) ?? false
                let written = Glibc.writev(descriptor, vector, count)
                box.ring?.start(offered: offered && written >= 0)
                return written
            }
            return Glibc.writev(descriptor, vector, count)
        }
        io.read = { descriptor, buffer, length, userdata in
            let reader = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue().reader
            let count = reader?.read(descriptor, buffer!, length) ?? Glibc.read(descriptor, buffer, length)
            if count > 0 { RawRequest.inspect(UnsafeRawBufferPointer(start: buffer, count: count)) }
            return count
        }
        io.splice_receive = { input, inputOffset, output, outputOffset, length, flags, _ in
            CFuse3.splice(input, inputOffset, output, outputOffset, length, flags)
        }
        io.splice_send = { input, inputOffset, output, outputOffset, length, flags, userdata in
            let box = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue()
            if let ring = box.ring, ring.serving.load(ordering: .relaxed) { return ring.takeSplicedReply(pipe: input, length: length, device: output) }
            return CFuse3.splice(input, inputOffset, output, outputOffset, length, flags)
        }
        _ = fuse_session_custom_io(session, &io, fuse_session_fd(session))
    }

    /// Serves requests on several threads until the filesystem is unmounted or a signal arrives.
    public func run(threads: UInt32 = 8) {
        fuse_set_signal_handlers(session)
        let config = fuse_loop_cfg_create()
        fuse_loop_cfg_set_max_threads(config, threads)
        fuse_session_loop_mt(session, config)
        fuse_loop_cfg_destroy(config)
        fuse_remove_signal_handlers(session)
    }

    /// Unmounts (if still mounted) and releases the session.
    public func close() {
        fuse_session_unmount(session)
        ring?.stop()
        fuse_session_destroy(session)
    }

    /// Requests answered over FUSE's io_uring queues since mount (0 without the ring).
    public var ringRequests: Int { ring?.served.load(ordering: .relaxed) ?? 0 }

    /// Makes the kernel forget what it cached about these paths.
    public func invalidate(paths: [String]) {
        let cached = union.cachedEntries(for: paths)
        if cachesWrites.load(ordering: .relaxed) { union.renewFiles(at: paths) }
        for (parent, name) in cached.entries {
            name.withCString { _ = fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), $0, strlen($0)) }
        }
        for inode in cached.inodes {
            _ = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(inode), 0, 0)
        }
    }

    // MARK: Replies

    /// The mount a request is for, counting the request as one of `operation`.
    static func mount(_ request: fuse_req_t?, counting operation: RequestCounts.Operation) -> FuseMount {
        let mount = Unmanaged<MountBox>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue().mount!
        mount.requests.count(operation)
        return mount
    }

    /// Runs an operation and answers with its error, if it throws.
    static func reply(_ request: fuse_req_t?, _ operation: RequestCounts.Operation, _ body: (FuseMount) throws -> Void) {
        do {
            try body(mount(request, counting: operation))
        } catch let error as FSError {
            fuse_reply_err(request, error.code)
        } catch {
            fuse_reply_err(request, EIO)
        }
    }

    static func entryParameter(_ entry: Union.Entry) -> fuse_entry_param {
        var parameter = fuse_entry_param()
        parameter.ino = fuse_ino_t(entry.inode)
        parameter.attr = entry.attributes
        parameter.attr_timeout = timeout
        parameter.entry_timeout = timeout
        return parameter
    }

    static func replyEntry(_ request: fuse_req_t?, _ entry: Union.Entry) {
        var parameter = entryParameter(entry)
        fuse_reply_entry(request, &parameter)
    }

    /// Runs a change to the filesystem through the union's gate, so snapshots see it whole or not at all.
    static func change(_ request: fuse_req_t?, _ operation: RequestCounts.Operation, _ body: (FuseMount) throws -> Void) {
        reply(request, operation) { mount in try mount.union.gate.change { () throws -> Void in try body(mount) } }
    }

    static func caller(_ request: fuse_req_t?) -> Caller {
        let context = fuse_req_ctx(request)!.pointee
        return Caller(uid: context.uid, gid: context.gid)
    }

    /// The kernel's request that this change clear setuid and setgid (FUSE_HANDLE_KILLPRIV_V2), if it
    /// made one; the caller's groups are read only if a setgid file asks for them.
    static func privilegeDrop(_ request: fuse_req_t?) -> PrivilegeDrop? {
        guard RawRequest.killsSetuidSetgid else { return nil }
        return PrivilegeDrop { gid in caller(request).gid == gid || supplementaryGroups(request).contains(gid) }
    }

    /// fallocate and copy_file_range come with no kill flag (Linux 6.18 sets none for them), yet the
    /// kernel's own file systems, and overlayfs over them, clear setuid and setgid when a user without
    /// CAP_FSETID changes a file that way: the daemon does it for them, reading the caller's
    /// capabilities only for a file that has the bits.
    static func privilegeDropWithoutFlag(_ request: fuse_req_t?) -> PrivilegeDrop {
        PrivilegeDrop(isInGroup: { gid in caller(request).gid == gid || supplementaryGroups(request).contains(gid) },
                      keepsPrivileges: { callerHasCapability(request, bit: 4) })  // CAP_FSETID
    }

    /// Whether the caller's effective capabilities (`CapEff` in /proc/PID/status) hold `bit`; false when
    /// its process is gone or unreadable.
    private static func callerHasCapability(_ request: fuse_req_t?, bit: Int) -> Bool {
        let pid = fuse_req_ctx(request)!.pointee.pid
        guard pid > 0, let descriptor = try? FileDescriptor.open("/proc/\(pid)/status", O_RDONLY),
              let bytes = try? descriptor.readAll(limit: 1 << 16) else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << UInt64(bit)) != 0
    }

    private static func supplementaryGroups(_ request: fuse_req_t?) -> [gid_t] {
        var groups = [gid_t](repeating: 0, count: 64)
        while true {
            let count = Int(fuse_req_getgroups(request, Int32(groups.count), &groups))
            guard count >= 0 else { return [] }
            if count <= groups.count { return Array(groups.prefix(count)) }
            groups = [gid_t](repeating: 0, count: count)
        }
    }

    static func string(_ pointer: UnsafePointer<CChar>?) -> String { String(cString: pointer!) }

    // MARK: Operations

    /// The operations table, set group by group (one file each: FuseMount+GROUP.swift).
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        setLookups(&ops)
        setChanges(&ops)
        setFiles(&ops)
        setDirectories(&ops)
        return ops
    }

    /// Counts an open file with `opens` and returns its file handle, and the backing id to answer with
    /// for passthrough; on a conflict, closes it, renews the node and fails with ESTALE so that the
    /// kernel retries on a new inode.
    func admit(_ node: UInt64, _ file: Union.OpenFile) throws(FSError) -> (handle: UInt64, backingID: Int32?) {
        let descriptor = file.deferred.map { $0 << 34 | FuseMount.deferredHandle } ?? UInt64(UInt32(bitPattern: file.descriptor))
        switch opens.admit(node, file) {
        case .cached:
            return (descriptor, nil)
        case .passthrough(let backingID):
            return (descriptor | KernelOpens.passthroughHandle, backingID)
        case .conflict:
            releaseInUnion(node, handle: descriptor)
            union.renew(node)
            throw FSError(ESTALE)
        }
    }

    /// Runs `body` on the descriptor a request on `inode` reads or writes: its file handle's, or,
    /// where the kernel opens files itself (file handle 0), the inode's, lent by `union.descriptors`
    /// for the call. `writable`, which a change asks for under the gate, copies a shared file up first.
    func withDescriptor<R>(_ inode: fuse_ino_t, _ info: UnsafeMutablePointer<fuse_file_info>?, writable: Bool,
                           _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R {
        if let handle = info?.pointee.fh, handle != 0 {
            return try body(handle & FuseMount.deferredHandle != 0 ? union.deferredBlob(handle >> 34) : Int32(truncatingIfNeeded: handle))
        }
        let loan = try union.borrowDescriptor(UInt64(inode), writable: writable)
        defer { union.descriptors.giveBack(loan) }
        return try body(loan.descriptor)
    }

    func closeFile(_ node: UInt64, handle: UInt64) {
        opens.release(node, passthrough: handle & KernelOpens.passthroughHandle != 0)
        releaseInUnion(node, handle: handle)
    }

    private func releaseInUnion(_ node: UInt64, handle: UInt64) {
        if handle & FuseMount.deferredHandle != 0 {
            union.releaseDeferred(node, handle >> 34)
        } else {
            union.release(node, descriptor: Int32(truncatingIfNeeded: handle))
        }
    }

    /// The mark of a file handle whose shared file's blob is opened at the first read (`Union.OpenFile.deferred`):
    /// the open's id is in the bits above it and the low 32 bits, a descriptor's elsewhere, are 0.
    static let deferredHandle: UInt64 = 1 << 33

    /// getxattr/listxattr protocol: a zero size asks for the length only.
    static func replyAttributeData(_ request: fuse_req_t?, _ bytes: [UInt8], size: Int) {
        if size == 0 {
            fuse_reply_xattr(request, bytes.count)
        } else if bytes.count > size {
            fuse_reply_err(request, ERANGE)
        } else {
            bytes.withUnsafeBytes { _ = fuse_reply_buf(request, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
    }
}

/// Holds the mount for libfuse's userdata; set once, before the session serves a request.
final class MountBox: @unchecked Sendable {
    var mount: FuseMount?
    var passthrough = false
    var ring: FuseRing?
    var reader: RequestReader?
    let initAnswered = Atomic<Bool>(false)
}

public struct MountError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
