import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// Changes to names and attributes: each passes the union's gate (`change`), so snapshots see it whole or not at all.
    static func setChanges(_ ops: inout fuse_lowlevel_ops) {
        ops.setattr = { request, inode, attributes, toSet, info in
            FuseMount.change(request, .setattr) { mount in
                let attributes = attributes!.pointee
                var changes = Union.AttributeChanges()
                if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = attributes.st_mode }
                if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = attributes.st_uid }
                if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = attributes.st_gid }
                if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = attributes.st_size }
                if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { changes.accessTime = .now } else if toSet & FUSE_SET_ATTR_ATIME != 0 { changes.accessTime = .at(attributes.st_atim) }
                if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { changes.modificationTime = .now } else if toSet & FUSE_SET_ATTR_MTIME != 0 { changes.modificationTime = .at(attributes.st_mtim) }
                let openFile = info.map { Int32(truncatingIfNeeded: $0.pointee.fh) }
                var result = try mount.union.setAttributes(UInt64(inode), changes, openFile: openFile.flatMap { $0 > 0 ? $0 : nil },
                                                           droppingPrivileges: FuseMount.privilegeDrop(request))
                fuse_reply_attr(request, &result, FuseMount.timeout)
            }
        }
        ops.mknod = { request, parent, name, mode, device in
            FuseMount.change(request, .mknod) { mount in
                FuseMount.replyEntry(request, try mount.union.makeNode(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, device: UInt64(device), caller: FuseMount.caller(request)))
            }
        }
        ops.mkdir = { request, parent, name, mode in
            FuseMount.change(request, .mkdir) { mount in
                FuseMount.replyEntry(request, try mount.union.makeDirectory(parent: UInt64(parent), name: FuseMount.string(name), mode: mode, caller: FuseMount.caller(request)))
            }
        }
        ops.symlink = { request, target, parent, name in
            FuseMount.change(request, .symlink) { mount in
                FuseMount.replyEntry(request, try mount.union.makeSymlink(parent: UInt64(parent), name: FuseMount.string(name), target: FuseMount.string(target), caller: FuseMount.caller(request)))
            }
        }
        ops.link = { request, inode, parent, name in
            FuseMount.change(request, .link) { mount in
                FuseMount.replyEntry(request, try mount.union.link(UInt64(inode), parent: UInt64(parent), name: FuseMount.string(name)))
            }
        }
        ops.unlink = { request, parent, name in
            FuseMount.change(request, .unlink) { mount in
                try mount.union.unlink(parent: UInt64(parent), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }
        ops.rmdir = { request, parent, name in
            FuseMount.change(request, .rmdir) { mount in
                try mount.union.removeDirectory(parent: UInt64(parent), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }
        ops.rename = { request, parent, name, newParent, newName, flags in
            FuseMount.change(request, .rename) { mount in
                try mount.union.rename(parent: UInt64(parent), name: FuseMount.string(name), newParent: UInt64(newParent), newName: FuseMount.string(newName),
                                       flags: Union.RenameFlags(rawValue: flags))
                fuse_reply_err(request, 0)
            }
        }
        ops.setxattr = { request, inode, name, value, size, flags in
            FuseMount.change(request, .setxattr) { mount in
                let bytes = Array(UnsafeRawBufferPointer(start: value, count: size))
                try mount.union.setExtendedAttribute(UInt64(inode), name: FuseMount.string(name), value: bytes, flags: flags)
                fuse_reply_err(request, 0)
            }
        }
        ops.removexattr = { request, inode, name in
            FuseMount.change(request, .removexattr) { mount in
                try mount.union.removeExtendedAttribute(UInt64(inode), name: FuseMount.string(name))
                fuse_reply_err(request, 0)
            }
        }

    }
}
