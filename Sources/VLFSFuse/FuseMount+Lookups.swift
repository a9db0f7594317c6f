import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// Finding names and reading what they are: answered from the union without changing it.
    static func setLookups(_ ops: inout fuse_lowlevel_ops) {
        ops.`init` = { userdata, connection in
            guard let connection else { return }
            let wanted = UInt32(FUSE_CAP_SPLICE_WRITE) | UInt32(FUSE_CAP_SPLICE_MOVE)
                | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_ASYNC_READ) | UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT)
            connection.pointee.want |= wanted & connection.pointee.capable
            // Requests are read with read(2), not spliced, so that the custom I/O sees each one's bytes
            // (`RawRequest`); a small request costs one system call instead of a splice and a read.
            connection.pointee.want &= ~UInt32(FUSE_CAP_SPLICE_READ)
            let mount = Unmanaged<MountBox>.fromOpaque(userdata!).takeUnretainedValue().mount!
            if mount.asksToCacheWrites { connection.pointee.want |= UInt32(FUSE_CAP_WRITEBACK_CACHE) & connection.pointee.capable }
            // A kernel that opens files itself would truncate an O_TRUNC open in its OPEN, which it no
            // longer sends: without atomic O_TRUNC it sends a SETATTR of size 0 instead.
            if mount.kernelOpensFiles { connection.pointee.want &= ~UInt32(FUSE_CAP_ATOMIC_O_TRUNC) }
            mount.opensDirectoriesItself.store(connection.pointee.want & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0, ordering: .relaxed)
            mount.cachesWrites.store(connection.pointee.want & UInt32(FUSE_CAP_WRITEBACK_CACHE) != 0, ordering: .relaxed)
            mount.opens.separatesFiles.store(mount.cachesWrites.load(ordering: .relaxed), ordering: .relaxed)
            connection.pointee.max_write = 1 << 20
            connection.pointee.max_readahead = 1 << 20
        }
        ops.lookup = { request, parent, name in
            FuseMount.reply(request, .lookup) { mount in
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
            FuseMount.mount(request, counting: .forget).union.forget(UInt64(inode), count: count)
            fuse_reply_none(request)
        }
        ops.forget_multi = { request, count, forgets in
            let union = FuseMount.mount(request, counting: .batchForget).union
            for index in 0..<count { union.forget(UInt64(forgets![index].ino), count: forgets![index].nlookup) }
            fuse_reply_none(request)
        }
        ops.getattr = { request, inode, _ in
            FuseMount.reply(request, .getattr) { mount in
                var attributes = try mount.union.attributes(of: UInt64(inode))
                fuse_reply_attr(request, &attributes, FuseMount.timeout)
            }
        }
        ops.readlink = { request, inode in
            FuseMount.reply(request, .readlink) { mount in
                let target = try mount.union.readLink(UInt64(inode))
                fuse_reply_readlink(request, target)
            }
        }
        ops.access = { request, inode, _ in
            FuseMount.reply(request, .access) { mount in
                _ = try mount.union.attributes(of: UInt64(inode))
                fuse_reply_err(request, 0)
            }
        }
        ops.statfs = { request, _ in
            FuseMount.reply(request, .statfs) { mount in
                var statistics = try mount.union.statistics()
                fuse_reply_statfs(request, &statistics)
            }
        }
        ops.getxattr = { request, inode, name, size in
            FuseMount.reply(request, .getxattr) { mount in
                let value = try mount.union.extendedAttribute(UInt64(inode), name: FuseMount.string(name))
                FuseMount.replyAttributeData(request, value, size: size)
            }
        }
        ops.listxattr = { request, inode, size in
            FuseMount.reply(request, .listxattr) { mount in
                let names = try mount.union.extendedAttributeNames(UInt64(inode))
                FuseMount.replyAttributeData(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            }
        }
    }
}
