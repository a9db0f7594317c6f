import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// The libfuse low-level adapter over a `Union`. The only file that sees libfuse's C types.
///
/// Caching contract. Everything visible changes only through this daemon, so the kernel may cache
/// entries, negative entries and attributes for a day; the daemon invalidates explicitly what changes
/// behind the kernel's back (a live update of the layer stack, a revert, a reset). Shared files opened
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
    private let opens: KernelOpens
    /// Directory listings being read, by directory inode, in cookie order: taken when a reader starts at
    /// offset 0, used for the offsets that follow, dropped when a reader reaches the end, and the most
    /// recent few kept at most. The kernel opens directories without asking (see `opendir`), so there
    /// is no handle to hang a listing on; instead an offset is the cookie of the last entry returned, a
    /// hash of its name (as ext4 does), and a reader resumes after it in whatever listing is current:
    /// readers that interleave, or a directory that changes between calls, never make an unchanged
    /// entry show twice or not at all.
    private let listings = Mutex(DirectoryListings())
    /// Negotiated at INIT: the kernel opens directories without asking once opendir says ENOSYS.
    private let opensDirectoriesItself = Atomic<Bool>(false)
    static let timeout = 86_400.0

    /// Mounts `union` at `mountpoint`. The filesystem answers once `run()` is called. A read-only mount
    /// (an image's virtual mount) has the kernel refuse every change with EROFS before it reaches the union.
    /// With `passthrough`, shared files opened for reading are read by the kernel straight from their
    /// blobs, where the kernel supports it (see `KernelOpens`).
    public init(union: Union, mountpoint: String, fsName: String, readOnly: Bool = false, passthrough: Bool = true) throws {
        self.union = union
        self.mountpoint = mountpoint
        // The kernel applied the caller's umask to every mode it sends; the daemon's own must not apply again.
        umask(0)
        let options = "fsname=\(fsName),subtype=strata,default_permissions,allow_other" + (readOnly ? ",ro" : "")
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
        opens = KernelOpens(sessionDescriptor: fuse_session_fd(session), passthrough: passthrough)
        box.mount = self
        if passthrough { FuseMount.requestPassthrough(session) }
    }

    /// libfuse 3.14 predates passthrough: its messages go through this I/O, which adds the request for
    /// passthrough to its INIT reply (the first message it writes) and otherwise does what libfuse does.
    private static func requestPassthrough(_ session: OpaquePointer) {
        var io = fuse_custom_io()
        io.writev = { descriptor, vector, count, userdata in
            let box = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue()
            if !box.initAnswered.load(ordering: .relaxed) {
                box.initAnswered.store(true, ordering: .relaxed)
                _ = strata_fuse_init_reply_request_passthrough(vector, count)
            }
            return Glibc.writev(descriptor, vector, count)
        }
        io.read = { descriptor, buffer, length, _ in Glibc.read(descriptor, buffer, length) }
        io.splice_receive = { input, inputOffset, output, outputOffset, length, flags, _ in
            CFuse3.splice(input, inputOffset, output, outputOffset, length, flags)
        }
        io.splice_send = io.splice_receive
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
        fuse_session_destroy(session)
    }

    /// Makes the kernel forget what it cached about these paths.
    public func invalidate(paths: [String]) {
        let cached = union.cachedEntries(for: paths)
        for (parent, name) in cached.entries {
            name.withCString { _ = fuse_lowlevel_notify_inval_entry(session, fuse_ino_t(parent), $0, strlen($0)) }
        }
        for inode in cached.inodes {
            _ = fuse_lowlevel_notify_inval_inode(session, fuse_ino_t(inode), 0, 0)
        }
    }

    // MARK: Replies

    static func mount(_ request: fuse_req_t?) -> FuseMount {
        Unmanaged<MountBox>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue().mount!
    }

    /// Runs an operation and answers with its error, if it throws.
    static func reply(_ request: fuse_req_t?, _ body: (FuseMount) throws -> Void) {
        do {
            try body(mount(request))
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
    static func change(_ request: fuse_req_t?, _ body: (FuseMount) throws -> Void) {
        reply(request) { mount in try mount.union.gate.change { () throws -> Void in try body(mount) } }
    }

    static func caller(_ request: fuse_req_t?) -> Caller {
        let context = fuse_req_ctx(request)!.pointee
        return Caller(uid: context.uid, gid: context.gid)
    }

    static func string(_ pointer: UnsafePointer<CChar>?) -> String { String(cString: pointer!) }

    // MARK: Operations

    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let connection else { return }
            let wanted = UInt32(FUSE_CAP_SPLICE_READ) | UInt32(FUSE_CAP_SPLICE_WRITE) | UInt32(FUSE_CAP_SPLICE_MOVE)
                | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_ASYNC_READ) | UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT)
            connection.pointee.want |= wanted & connection.pointee.capable
            let mount = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue().mount!
            mount.opensDirectoriesItself.store(connection.pointee.want & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0, ordering: .relaxed)
            connection.pointee.max_write = 1 << 20
            connection.pointee.max_readahead = 1 << 20
        }
        ops.lookup = { request, parent, name in
            FuseMount.reply(request) { mount in
                do {
                    FuseMount.replyEntry(request, try mount.union.lookup(parent: UInt64(parent), name: FuseMount.string(name)))
                } catch let error as FSError where error == .notFound {
                    // A negative entry the kernel may cache: names appear only through this daemon.
                    var negative = fuse_entry_param()
                    negative.entry_timeout = FuseMount.timeout
                    fuse_reply_entry(request, &negative)
                }
            }
        }
        ops.forget = { request, inode, count in
            FuseMount.mount(request).union.forget(UInt64(inode), count: count)
            fuse_reply_none(request)
        }
        ops.forget_multi = { request, count, forgets in
            let union = FuseMount.mount(request).union
            for index in 0..<count { union.forget(UInt64(forgets![index].ino), count: forgets![index].nlookup) }
            fuse_reply_none(request)
        }
        ops.getattr = { request, inode, _ in
            FuseMount.reply(request) { mount in
                var attributes = try mount.union.attributes(of: UInt64(inode))
                fuse_reply_attr(request, &attributes, FuseMount.timeout)
            }
        }
        ops.setattr = { request, inode, attributes, toSet, info in
            FuseMount.change(request) { mount in
                let attributes = attributes!.pointee
                var changes = Union.AttributeChanges()
                if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = attributes.st_mode }
                if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = attributes.st_uid }
                if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = attributes.st_gid }
                if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = attributes.st_size }
                if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { changes.accessTime = .now } else if toSet & FUSE_SET_ATTR_ATIME != 0 { changes.accessTime = .at(attributes.st_atim) }
                if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { changes.modificationTime = .now } else if toSet & FUSE_SET_ATTR_MTIME != 0 { changes.modificationTime = .at(attributes.st_mtim) }
                let openFile = info.map { Int32(truncatingIfNeeded: $0.pointee.fh) }
                var result = try mount.union.setAttributes(UInt64(inode), changes, openFile: openFile.flatMap { $0 > 0 ? $0 : nil })
                fuse_reply_attr(request, &result, FuseMount.timeout)
            }
        }
        ops.readlink = { request, inode in
            FuseMount.reply(request) { mount in
                let target = try mount.union.readLink(UInt64(inode))
                fuse_reply_readlink(request, target)
            }
        }
        ops.mknod = { request, parent, name, mode, device in
            FuseMount.change(request) { mount in
                FuseMount.replyEntry(request, try mount.union.makeNode(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, device: UInt64(device), caller: FuseMount.caller(request)))
            }
        }
        ops.mkdir = { request, parent, name, mode in
            FuseMount.change(request) { mount in
                FuseMount.replyEntry(request, try mount.union.makeDirectory(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, caller: FuseMount.caller(request)))
            }
        }
        ops.symlink = { request, target, parent, name in
            FuseMount.change(request) { mount in
                FuseMount.replyEntry(request, try mount.union.makeSymlink(parent: UInt64(parent), name: FuseMount.string(name), target: FuseMount.string(target), caller: FuseMount.caller(request)))
            }
        }
        ops.link = { request, inode, parent, name in
            FuseMount.change(request) { mount in
                FuseMount.replyEntry(request, try mount.union.link(UInt64(inode), parent: UInt64(parent), name: FuseMount.string(name)))
            }
        }
        ops.unlink = { request, parent, name in
            FuseMount.change(request) { mount in
                try mount.union.unlink(parent: UInt64(parent), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }
        ops.rmdir = { request, parent, name in
            FuseMount.change(request) { mount in
                try mount.union.removeDirectory(parent: UInt64(parent), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            FuseMount.change(request) { mount in
                try mount.union.rename(parent: UInt64(parent), name: FuseMount.string(name), newParent: UInt64(newParent), newName: FuseMount.string(newName),
                                       flags: Union.RenameFlags(rawValue: flags))
                fuse_reply_err(request, 0)
            }
        }
        ops.open = { request, inode, info in
            // An open for writing may copy the file up: a change, which snapshots must see whole.
            let run = Union.opensForWriting(info!.pointee.flags) ? FuseMount.change : FuseMount.reply
            run(request) { mount in
                let node = UInt64(inode)
                let file = try mount.union.open(node, flags: info!.pointee.flags)
                let (handle, backingID) = try mount.admit(node, file)
                if let backingID {
                    if strata_fuse_reply_open_passthrough(request, handle, backingID) != 0 { mount.closeFile(node, handle: handle) }
                    return
                }
                info!.pointee.fh = handle
                info!.pointee.keep_cache = file.isShared ? 1 : 0
                if fuse_reply_open(request, info) != 0 { mount.closeFile(node, handle: handle) }
            }
        }
        ops.create = { request, parent, name, mode, info in
            FuseMount.change(request) { mount in
                let (entry, file) = try mount.union.create(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, flags: info!.pointee.flags, caller: FuseMount.caller(request))
                info!.pointee.fh = try mount.admit(entry.inode, file).handle
                var parameter = FuseMount.entryParameter(entry)
                if fuse_reply_create(request, &parameter, info) != 0 { mount.closeFile(entry.inode, handle: info!.pointee.fh) }
            }
        }
        ops.read = { request, _, size, offset, info in
            var vector = fuse_bufvec(count: 1, idx: 0, off: 0,
                                     buf: fuse_buf(size: size, flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                   mem: nil, fd: Int32(truncatingIfNeeded: info!.pointee.fh), pos: offset))
            fuse_reply_data(request, &vector, FUSE_BUF_SPLICE_MOVE)
        }
        ops.write_buf = { request, _, source, offset, info in
            var destination = fuse_bufvec(count: 1, idx: 0, off: 0,
                                          buf: fuse_buf(size: fuse_buf_size(source), flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                        mem: nil, fd: Int32(truncatingIfNeeded: info!.pointee.fh), pos: offset))
            let written = FuseMount.mount(request).union.gate.change {
                fuse_buf_copy(&destination, UnsafeMutablePointer(mutating: source), fuse_buf_copy_flags(rawValue: 0))
            }
            if written < 0 { fuse_reply_err(request, Int32(-written)) } else { fuse_reply_write(request, Int(written)) }
        }
        // Nothing to flush (writes reach the private file at once) and no locks to drop: ENOSYS, which
        // the kernel takes as success and as a sign not to send FLUSH on every close again.
        ops.flush = { request, _, _ in fuse_reply_err(request, ENOSYS) }
        ops.release = { request, inode, info in
            FuseMount.mount(request).closeFile(UInt64(inode), handle: info!.pointee.fh)
            fuse_reply_err(request, 0)
        }
        ops.fsync = { request, _, dataOnly, info in
            let fd = Int32(truncatingIfNeeded: info!.pointee.fh)
            let result = dataOnly != 0 ? fdatasync(fd) : fsync(fd)
            // Shared blobs are opened read-only and never dirty.
            fuse_reply_err(request, result == 0 || errno == EBADF || errno == EINVAL ? 0 : errno)
        }
        ops.fallocate = { request, _, mode, offset, length, info in
            let result = FuseMount.mount(request).union.gate.change { CLinux.fallocate(Int32(truncatingIfNeeded: info!.pointee.fh), mode, offset, length) }
            fuse_reply_err(request, result == 0 ? 0 : errno)
        }
        ops.lseek = { request, _, offset, whence, info in
            let result = Glibc.lseek(Int32(truncatingIfNeeded: info!.pointee.fh), offset, whence)
            if result < 0 { fuse_reply_err(request, errno) } else { fuse_reply_lseek(request, result) }
        }
        ops.copy_file_range = { request, _, offsetIn, infoIn, _, offsetOut, infoOut, length, flags in
            var inputOffset = offsetIn
            var outputOffset = offsetOut
            let copied = FuseMount.mount(request).union.gate.change {
                CLinux.copy_file_range(Int32(truncatingIfNeeded: infoIn!.pointee.fh), &inputOffset,
                                       Int32(truncatingIfNeeded: infoOut!.pointee.fh), &outputOffset, length, UInt32(flags))
            }
            if copied < 0 { fuse_reply_err(request, errno) } else { fuse_reply_write(request, copied) }
        }
        ops.opendir = { request, _, info in
            // Listings change only through this daemon: the kernel may keep them until told. Where the
            // kernel can open directories by itself (and then caches the same way), it is told so.
            if FuseMount.mount(request).opensDirectoriesItself.load(ordering: .relaxed) {
                fuse_reply_err(request, ENOSYS)
                return
            }
            info!.pointee.cache_readdir = 1
            info!.pointee.keep_cache = 1
            fuse_reply_open(request, info)
        }
        ops.readdir = { request, inode, size, offset, info in
            FuseMount.readDirectory(request, inode: inode, size: size, offset: offset, info: info, plus: false)
        }
        ops.readdirplus = { request, inode, size, offset, info in
            FuseMount.readDirectory(request, inode: inode, size: size, offset: offset, info: info, plus: true)
        }
        ops.fsyncdir = { request, inode, _, _ in
            FuseMount.reply(request) { mount in
                try mount.union.syncDirectory(UInt64(inode))
                fuse_reply_err(request, 0)
            }
        }
        ops.statfs = { request, _ in
            FuseMount.reply(request) { mount in
                var statistics = try mount.union.statistics()
                fuse_reply_statfs(request, &statistics)
            }
        }
        ops.access = { request, inode, _ in
            FuseMount.reply(request) { mount in
                _ = try mount.union.attributes(of: UInt64(inode))
                fuse_reply_err(request, 0)
            }
        }
        ops.getxattr = { request, inode, name, size in
            FuseMount.reply(request) { mount in
                let value = try mount.union.extendedAttribute(UInt64(inode), name: FuseMount.string(name))
                FuseMount.replyAttributeData(request, value, size: size)
            }
        }
        ops.listxattr = { request, inode, size in
            FuseMount.reply(request) { mount in
                let names = try mount.union.extendedAttributeNames(UInt64(inode))
                FuseMount.replyAttributeData(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            }
        }
        ops.setxattr = { request, inode, name, value, size, flags in
            FuseMount.change(request) { mount in
                let bytes = Array(UnsafeRawBufferPointer(start: value, count: size))
                try mount.union.setExtendedAttribute(UInt64(inode), name: FuseMount.string(name), value: bytes, flags: flags)
                fuse_reply_err(request, 0)
            }
        }
        ops.removexattr = { request, inode, name in
            FuseMount.change(request) { mount in
                try mount.union.removeExtendedAttribute(UInt64(inode), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }
        return ops
    }

    /// Counts an open file with `opens` and returns its file handle, and the backing id to answer with
    /// for passthrough; on a conflict, closes it, renews the node and fails with ESTALE so that the
    /// kernel retries on a new inode.
    func admit(_ node: UInt64, _ file: Union.OpenFile) throws(FSError) -> (handle: UInt64, backingID: Int32?) {
        let descriptor = UInt64(UInt32(bitPattern: file.descriptor))
        switch opens.admit(node, file) {
        case .cached:
            return (descriptor, nil)
        case .passthrough(let backingID):
            return (descriptor | KernelOpens.passthroughHandle, backingID)
        case .conflict:
            union.release(node, descriptor: file.descriptor)
            union.renew(node)
            throw FSError(ESTALE)
        }
    }

    func closeFile(_ node: UInt64, handle: UInt64) {
        opens.release(node, passthrough: handle & KernelOpens.passthroughHandle != 0)
        union.release(node, descriptor: Int32(truncatingIfNeeded: handle))
    }

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

    /// Answers readdir and readdirplus from the directory's listing, from the first entry whose cookie
    /// follows `offset` ("." and ".." are 1 and 2). readdirplus counts a lookup only for the entries that fit.
    static func readDirectory(_ request: fuse_req_t?, inode: fuse_ino_t, size: Int, offset: off_t, info: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        reply(request) { mount in
            let directory = UInt64(inode)
            let listing: DirectoryListings.Listing
            if offset != 0, let taken = mount.listings.withLock({ $0.listing(directory, withAttributes: plus) }) {
                listing = taken
            } else {
                listing = DirectoryListings.Listing(try mount.union.list(directory, withAttributes: plus), withAttributes: plus)
                mount.listings.withLock { $0.keep(listing, for: directory) }
            }
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            var position = offset < 2 ? Int(offset) - 2 : listing.firstIndex(after: UInt64(offset))
            while position < listing.entries.count {
                let name: String
                var attributes = stat()
                var entry: Union.Entry?
                let cookie: UInt64
                if position < 0 {
                    name = position == -2 ? "." : ".."
                    attributes.st_ino = position == -2 ? UInt(Union.inodeNumber(ofNode: UInt64(inode))) : 1
                    attributes.st_mode = S_IFDIR
                    cookie = UInt64(position + 3)
                } else {
                    let item = listing.entries[position]
                    name = item.name
                    cookie = listing.cookies[position]
                    if plus, let itemAttributes = item.attributes {
                        entry = Union.Entry(inode: item.inode, attributes: itemAttributes)
                        attributes = itemAttributes
                    } else {
                        attributes.st_ino = UInt(Union.inodeNumber(ofNode: item.inode))
                        attributes.st_mode = item.type
                    }
                }
                let remaining = size - used
                let needed = buffer.withUnsafeMutableBufferPointer { raw -> Int in
                    let start = raw.baseAddress! + used
                    if plus {
                        var parameter = entry.map(entryParameter) ?? fuse_entry_param(ino: 0, generation: 0, attr: attributes, attr_timeout: 0, entry_timeout: 0)
                        return fuse_add_direntry_plus(request, start, remaining, name, &parameter, off_t(cookie))
                    }
                    return fuse_add_direntry(request, start, remaining, name, &attributes, off_t(cookie))
                }
                if needed > remaining { break }
                if entry != nil { try mount.union.adopt(listing.entries[position], in: directory) }
                used += needed
                position += 1
            }
            if position == listing.entries.count { mount.listings.withLock { $0.finished(directory) } }
            fuse_reply_buf(request, buffer, used)
        }
    }
}

/// The listings readers are going through (see `FuseMount.listings`).
struct DirectoryListings {
    struct Listing {
        let entries: [Union.DirectoryEntry]
        /// Each entry's offset: a hash of its name above the offsets of "." and "..", ascending.
        let cookies: [UInt64]
        let withAttributes: Bool

        init(_ entries: [Union.DirectoryEntry], withAttributes: Bool) {
            let keyed = entries.map { (Listing.cookie($0.name), $0) }.sorted { $0.0 < $1.0 }
            self.entries = keyed.map(\.1)
            cookies = keyed.map(\.0)
            self.withAttributes = withAttributes
        }

        /// A stable 62-bit hash (within this process) moved above 2; off_t must stay positive.
        static func cookie(_ name: String) -> UInt64 {
            var hasher = Hasher()
            hasher.combine(name)
            return (UInt64(bitPattern: Int64(hasher.finalize())) >> 2) + 3
        }

        /// Where a reader whose last entry had `cookie` goes on.
        func firstIndex(after cookie: UInt64) -> Int {
            var low = 0, high = cookies.count
            while low < high {
                let middle = (low + high) / 2
                if cookies[middle] <= cookie { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    private var listings = BoundedCache<UInt64, Listing>(capacity: 64)

    mutating func listing(_ directory: UInt64, withAttributes: Bool) -> Listing? {
        guard let listing = listings.value(directory), listing.withAttributes || !withAttributes else { return nil }
        return listing
    }

    mutating func keep(_ listing: Listing, for directory: UInt64) { listings.insert(listing, for: directory) }

    mutating func finished(_ directory: UInt64) { listings.removeValue(forKey: directory) }
}

/// Holds the mount for libfuse's userdata; set once, before the session serves a request.
final class MountBox: @unchecked Sendable {
    var mount: FuseMount?
    let initAnswered = Atomic<Bool>(false)
}

public struct MountError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
