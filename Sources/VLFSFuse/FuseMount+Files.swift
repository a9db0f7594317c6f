import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// Open files: the kernel's file handle is the descriptor (`admit`), or the kernel opens files itself and
    /// requests find it by inode (`withDescriptor`); reads splice from it, writes and allocations pass the gate.
    static func setFiles(_ ops: inout fuse_lowlevel_ops) {
        ops.open = { request, inode, info in
            // An open for writing may copy the file up: a change, which snapshots must see whole.
            let run = Union.opensForWriting(info!.pointee.flags) ? FuseMount.change : FuseMount.reply
            run(request, .open) { mount in
                // The kernel takes ENOSYS as "open regular files yourself" and asks no more.
                guard !mount.kernelOpensFiles else { throw FSError(ENOSYS) }
                let node = UInt64(inode)
                // A file read through the daemon, kept cached by the kernel, gets its blob at its first
                // READ: a warm re-read sends none.
                let file = try mount.union.open(node, flags: mount.privateOpenFlags(info!.pointee.flags), droppingPrivileges: FuseMount.privilegeDrop(request),
                                                deferringBlob: { !mount.opens.passesThrough(size: $0) })
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
            FuseMount.change(request, .create) { mount in
                // Where the kernel opens files itself, the new file's descriptor becomes its node's
                // (read-write, for whatever comes next) and the kernel gets handle 0: no RELEASE will come.
                let flags = mount.kernelOpensFiles ? O_RDWR : mount.privateOpenFlags(info!.pointee.flags)
                let (entry, file) = try mount.union.create(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, flags: flags, caller: FuseMount.caller(request))
                if mount.kernelOpensFiles {
                    mount.union.keepCreated(entry.inode, file)
                    info!.pointee.fh = 0
                } else {
                    info!.pointee.fh = try mount.admit(entry.inode, file).handle
                }
                var parameter = FuseMount.entryParameter(entry)
                if fuse_reply_create(request, &parameter, info) != 0, !mount.kernelOpensFiles { mount.closeFile(entry.inode, handle: info!.pointee.fh) }
            }
        }
        ops.read = { request, inode, size, offset, info in
            FuseMount.reply(request, .read) { mount in
                try mount.withDescriptor(inode, info, writable: false) { descriptor in
                    var vector = fuse_bufvec(count: 1, idx: 0, off: 0,
                                             buf: fuse_buf(size: size, flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                           mem: nil, fd: descriptor, pos: offset))
                    fuse_reply_data(request, &vector, FUSE_BUF_SPLICE_MOVE)
                }
            }
        }
        ops.write_buf = { request, inode, source, offset, info in
            FuseMount.change(request, .write) { mount in
                let written = try mount.withDescriptor(inode, info, writable: true) { descriptor throws(FSError) -> Int in
                    try FuseMount.privilegeDrop(request)?.apply(toOpenFile: descriptor)
                    var destination = fuse_bufvec(count: 1, idx: 0, off: 0,
                                                  buf: fuse_buf(size: fuse_buf_size(source), flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                                mem: nil, fd: descriptor, pos: offset))
                    return fuse_buf_copy(&destination, UnsafeMutablePointer(mutating: source), fuse_buf_copy_flags(rawValue: 0))
                }
                if written < 0 { fuse_reply_err(request, Int32(-written)) } else { fuse_reply_write(request, written) }
            }
        }
        // Nothing to flush (writes reach the private file at once) and no locks to drop: ENOSYS, which
        // the kernel takes as success and as a sign not to send FLUSH on every close again.
        ops.flush = { request, _, _ in
            _ = FuseMount.mount(request, counting: .flush)
            fuse_reply_err(request, ENOSYS)
        }
        ops.release = { request, inode, info in
            let mount = FuseMount.mount(request, counting: .release)
            // Handle 0: a file created before the kernel stopped sending OPEN; its descriptor is its node's.
            if info!.pointee.fh != 0 { mount.closeFile(UInt64(inode), handle: info!.pointee.fh) }
            fuse_reply_err(request, 0)
        }
        ops.fsync = { request, inode, dataOnly, info in
            FuseMount.reply(request, .fsync) { mount in
                try mount.withDescriptor(inode, info, writable: false) { descriptor throws(FSError) in
                    let result = dataOnly != 0 ? fdatasync(descriptor) : fsync(descriptor)
                    // Shared blobs are opened read-only and never dirty.
                    guard result == 0 || errno == EBADF || errno == EINVAL else { throw FSError(errno) }
                    try mount.union.fileSynced(UInt64(inode), descriptor: descriptor)
                }
                fuse_reply_err(request, 0)
            }
        }
        ops.fallocate = { request, inode, mode, offset, length, info in
            FuseMount.change(request, .fallocate) { mount in
                let error = try mount.withDescriptor(inode, info, writable: true) { descriptor throws(FSError) in
                    guard CLinux.fallocate(descriptor, mode, offset, length) == 0 else { return errno }
                    try FuseMount.privilegeDropWithoutFlag(request).apply(toOpenFile: descriptor)
                    return 0
                }
                fuse_reply_err(request, error)
            }
        }
        ops.lseek = { request, inode, offset, whence, info in
            FuseMount.reply(request, .lseek) { mount in
                let result = try mount.withDescriptor(inode, info, writable: false) { descriptor in
                    let position = Glibc.lseek(descriptor, offset, whence)
                    return position < 0 ? -off_t(errno) : position
                }
                if result < 0 { fuse_reply_err(request, Int32(-result)) } else { fuse_reply_lseek(request, result) }
            }
        }
        ops.copy_file_range = { request, inodeIn, offsetIn, infoIn, inodeOut, offsetOut, infoOut, length, flags in
            FuseMount.change(request, .copyFileRange) { mount in
                var inputOffset = offsetIn
                var outputOffset = offsetOut
                let copied = try mount.withDescriptor(inodeIn, infoIn, writable: false) { input throws(FSError) in
                    try mount.withDescriptor(inodeOut, infoOut, writable: true) { output throws(FSError) in
                        let count = CLinux.copy_file_range(input, &inputOffset, output, &outputOffset, length, UInt32(flags))
                        guard count >= 0 else { return -Int(errno) }
                        try FuseMount.privilegeDropWithoutFlag(request).apply(toOpenFile: output)
                        return count
                    }
                }
                if copied < 0 { fuse_reply_err(request, Int32(-copied)) } else { fuse_reply_write(request, copied) }
            }
        }
    }
}
