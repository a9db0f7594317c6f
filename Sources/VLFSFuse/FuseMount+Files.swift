import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// Open files: the kernel's file handle is the descriptor (`admit`), reads splice from it, writes and allocations pass the gate.
    static func setFiles(_ ops: inout fuse_lowlevel_ops) {
        ops.open = { request, inode, info in
            // An open for writing may copy the file up: a change, which snapshots must see whole.
            let run = Union.opensForWriting(info!.pointee.flags) ? FuseMount.change : FuseMount.reply
            run(request, .open) { mount in
                let node = UInt64(inode)
                let file = try mount.union.open(node, flags: mount.privateOpenFlags(info!.pointee.flags), droppingPrivileges: FuseMount.privilegeDrop(request))
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
                let (entry, file) = try mount.union.create(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, flags: mount.privateOpenFlags(info!.pointee.flags),
                                                                 caller: FuseMount.caller(request))
                info!.pointee.fh = try mount.admit(entry.inode, file).handle
                var parameter = FuseMount.entryParameter(entry)
                if fuse_reply_create(request, &parameter, info) != 0 { mount.closeFile(entry.inode, handle: info!.pointee.fh) }
            }
        }
        ops.read = { request, _, size, offset, info in
            _ = FuseMount.mount(request, counting: .read)
            var vector = fuse_bufvec(count: 1, idx: 0, off: 0,
                                     buf: fuse_buf(size: size, flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                   mem: nil, fd: Int32(truncatingIfNeeded: info!.pointee.fh), pos: offset))
            fuse_reply_data(request, &vector, FUSE_BUF_SPLICE_MOVE)
        }
        ops.write_buf = { request, _, source, offset, info in
            var destination = fuse_bufvec(count: 1, idx: 0, off: 0,
                                          buf: fuse_buf(size: fuse_buf_size(source), flags: fuse_buf_flags(FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue),
                                                        mem: nil, fd: Int32(truncatingIfNeeded: info!.pointee.fh), pos: offset))
            let written = FuseMount.mount(request, counting: .write).union.gate.change { () -> Int in
                do throws(FSError) {
                    try FuseMount.privilegeDrop(request)?.apply(toOpenFile: destination.buf.fd)
                } catch {
                    return -Int(error.code)
                }
                return fuse_buf_copy(&destination, UnsafeMutablePointer(mutating: source), fuse_buf_copy_flags(rawValue: 0))
            }
            if written < 0 { fuse_reply_err(request, Int32(-written)) } else { fuse_reply_write(request, Int(written)) }
        }
        // Nothing to flush (writes reach the private file at once) and no locks to drop: ENOSYS, which
        // the kernel takes as success and as a sign not to send FLUSH on every close again.
        ops.flush = { request, _, _ in
            _ = FuseMount.mount(request, counting: .flush)
            fuse_reply_err(request, ENOSYS)
        }
        ops.release = { request, inode, info in
            FuseMount.mount(request, counting: .release).closeFile(UInt64(inode), handle: info!.pointee.fh)
            fuse_reply_err(request, 0)
        }
        ops.fsync = { request, inode, dataOnly, info in
            FuseMount.reply(request, .fsync) { mount in
                let fd = Int32(truncatingIfNeeded: info!.pointee.fh)
                let result = dataOnly != 0 ? fdatasync(fd) : fsync(fd)
                // Shared blobs are opened read-only and never dirty.
                guard result == 0 || errno == EBADF || errno == EINVAL else { throw FSError(errno) }
                try mount.union.fileSynced(UInt64(inode), descriptor: fd)
                fuse_reply_err(request, 0)
            }
        }
        ops.fallocate = { request, _, mode, offset, length, info in
            let result = FuseMount.mount(request, counting: .fallocate).union.gate.change { CLinux.fallocate(Int32(truncatingIfNeeded: info!.pointee.fh), mode, offset, length) }
            fuse_reply_err(request, result == 0 ? 0 : errno)
        }
        ops.lseek = { request, _, offset, whence, info in
            _ = FuseMount.mount(request, counting: .lseek)
            let result = Glibc.lseek(Int32(truncatingIfNeeded: info!.pointee.fh), offset, whence)
            if result < 0 { fuse_reply_err(request, errno) } else { fuse_reply_lseek(request, result) }
        }
        ops.copy_file_range = { request, _, offsetIn, infoIn, _, offsetOut, infoOut, length, flags in
            var inputOffset = offsetIn
            var outputOffset = offsetOut
            let copied = FuseMount.mount(request, counting: .copyFileRange).union.gate.change {
                CLinux.copy_file_range(Int32(truncatingIfNeeded: infoIn!.pointee.fh), &inputOffset,
                                       Int32(truncatingIfNeeded: infoOut!.pointee.fh), &outputOffset, length, UInt32(flags))
            }
            if copied < 0 { fuse_reply_err(request, errno) } else { fuse_reply_write(request, copied) }
        }
    }
}
