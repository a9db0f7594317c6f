#if canImport(Glibc)
import Glibc
#endif

/// What a write, truncation or chown by a user without CAP_FSETID does to a file's mode, which the
/// kernel leaves to the daemon under FUSE_HANDLE_KILLPRIV_V2 (the daemon changes the private layer as
/// root, which keeps the bits). As the kernel's `setattr_should_drop_suidgid`: setuid goes, and setgid
/// when the group may execute the file or the user is not in the file's group.
public struct PrivilegeDrop {
    /// Whether the user is in a group (as fsgid or supplementary group): asked only of a setgid file
    /// its group may not execute, since finding the supplementary groups costs a read of /proc.
    let isInGroup: (UInt32) -> Bool
    /// Whether the user may keep the bits after all (CAP_FSETID): asked only of a file that has them,
    /// where the kernel did not decide it for the daemon.
    let keepsPrivileges: () -> Bool

    public init(isInGroup: @escaping (UInt32) -> Bool, keepsPrivileges: @escaping () -> Bool = { false }) {
        self.isInGroup = isInGroup
        self.keepsPrivileges = keepsPrivileges
    }

    /// The mode the file keeps, or nil when nothing changes (or it is not a regular file).
    func mode(after st: stat) -> mode_t? {
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        let old = st.st_mode & 0o7777
        var mode = old & ~S_ISUID
        if mode & S_ISGID != 0, mode & S_IXGRP != 0 || !isInGroup(st.st_gid) { mode &= ~S_ISGID }
        return mode == old || keepsPrivileges() ? nil : mode
    }

    /// Applies the drop to an open private file.
    public func apply(toOpenFile descriptor: Int32) throws(FSError) {
        var st = stat()
        try check { fstat(descriptor, &st) }
        if let mode = mode(after: st) { try check { fchmod(descriptor, mode) } }
    }
}
