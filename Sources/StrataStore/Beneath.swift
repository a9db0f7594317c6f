import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Reaching paths beneath a directory descriptor without ever leaving it. Everything written by
/// someone else (a VLFS's private layer, a checkout a delta is applied to) is reached this way: the
/// kernel resolves the path with `openat2`, refusing symbolic links on the way, `..`, absolute paths,
/// magic links and mount crossings, so swapping a directory for a symlink cannot redirect a call made
/// as root. The last component is then acted on with `*at()` calls that never follow it.
public enum Beneath {
    /// O_PATH and friends, which Swift's Glibc module leaves out.
    public static let pathOnly = Int32(STRATA_O_PATH)
    public static let temporaryFile = Int32(STRATA_O_TMPFILE)
    public static let emptyPath = Int32(STRATA_AT_EMPTY_PATH)
    public static let renameNoReplace = UInt32(STRATA_RENAME_NOREPLACE)

    private static let resolve = UInt64(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
    /// The longest path the kernel resolves in one call (PATH_MAX counts the terminating zero).
    private static let longestPath = Int(PATH_MAX) - 1

    /// Opens `relative` ("" is the directory itself) beneath `directory`: the descriptor, or -errno.
    /// A trailing symlink is refused (ELOOP) unless `flags` has O_PATH | O_NOFOLLOW, which opens the
    /// link itself. Paths longer than the kernel takes at once are resolved a piece at a time, each
    /// piece beneath the last, so a file the kernel let the caller create can always be reached again.
    public static func open(_ directory: Int32, _ relative: String, flags: Int32, mode: mode_t = 0) -> Int32 {
        guard relative.utf8.count > longestPath else {
            return openAt2(directory, relative.isEmpty ? "." : relative, flags: flags, mode: mode)
        }
        var utf8 = Substring(relative).utf8
        var from = directory
        defer { if from != directory { close(from) } }
        while utf8.count > longestPath {
            guard let cut = utf8[..<utf8.index(utf8.startIndex, offsetBy: longestPath)].lastIndex(of: UInt8(ascii: "/")) else { return -ENAMETOOLONG }
            let next = openAt2(from, String(Substring(utf8[..<cut])), flags: O_DIRECTORY | pathOnly, mode: 0)
            if from != directory { close(from) }
            guard next >= 0 else {
                from = directory
                return next
            }
            from = next
            utf8 = utf8[utf8.index(after: cut)...]
        }
        return openAt2(from, String(Substring(utf8)), flags: flags, mode: mode)
    }

    /// One openat2 call; `path` may be a name that is not UTF-8, as a directory listing gives it.
    static func openAt2(_ directory: Int32, _ path: UnsafePointer<CChar>, flags: Int32, mode: mode_t) -> Int32 {
        // openat2, unlike openat, refuses (EINVAL) a mode with flags that create nothing.
        let creates = flags & O_CREAT != 0 || flags & temporaryFile == temporaryFile
        // EAGAIN: a rename raced with the resolution; bounded, so a hostile loop of renames cannot
        // hold a caller forever.
        for _ in 0..<16 {
            let fd = strata_openat2(directory, path, flags | O_CLOEXEC, creates ? UInt32(mode) : 0, resolve)
            if fd >= 0 { return fd }
            if errno != EINTR && errno != EAGAIN { return -errno }
        }
        return -EAGAIN
    }

    /// Splits a relative path into its parent ("" for the top) and last name.
    @inline(__always)
    public static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return ("", path) }
        return (String(Substring(path.utf8[..<slash])), String(Substring(path.utf8[path.utf8.index(after: slash)...])))
    }

    /// A relative path as given by a user (a command-line argument, a delta's entry), made canonical:
    /// no leading or doubled slashes, no `.`; refused if any component is `..` (it would leave the tree)
    /// or contains a NUL.
    public static func normalize(_ path: String, what: String = "path") throws -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) where component != "." {
            guard component != "..", !component.utf8.contains(0) else {
                throw StoreError("\(what) '\(path)' leaves the tree it names a path in (it has '..')")
            }
            components.append(component)
        }
        return components.joined(separator: "/")
    }
}

extension Beneath {
    /// Opens for reading the regular file at `relative` beneath `directory`, if it is still the file
    /// `listed` describes (same device and inode).
    public static func openListedFile(_ directory: Int32, _ relative: String, listed: stat, path: String) throws -> FileDescriptor {
        let opened = try openChecked(directory, relative, path: path) {
            ($0.st_mode & S_IFMT) == S_IFREG && $0.st_dev == listed.st_dev && $0.st_ino == listed.st_ino
        }
        guard let opened else {
            throw StoreError("\(path) changed while it was read: it is no longer the regular file listed, and was not opened")
        }
        return FileDescriptor(raw: opened.fd, path: path)
    }

    /// Opens for reading the file at `relative` beneath `directory` if `accept` takes its status:
    /// the descriptor (the caller's to close) and that status, or nil when `accept` refuses. The file
    /// is reached as O_PATH first and reopened through /proc/self/fd only once checked, so a device
    /// node or FIFO that is not wanted is never opened (opening some devices acts: a watchdog starts,
    /// a tape rewinds; opening a FIFO blocks).
    public static func openChecked(_ directory: Int32, _ relative: String, path: String, accept: (stat) -> Bool) throws -> (fd: Int32, status: stat)? {
        let held = open(directory, relative, flags: pathOnly | O_NOFOLLOW)
        guard held >= 0 else { throw SystemError("open", path, errno: -held) }
        defer { close(held) }
        var st = stat()
        _ = try sys("fstat", path) { fstat(held, &st) }
        guard accept(st) else { return nil }
        return (try sys("open", path) { Glibc.open("/proc/self/fd/\(held)", O_RDONLY | O_CLOEXEC) }, st)
    }
}

extension FileDescriptor {
    /// A directory held open (O_PATH) as the root of the paths to be reached beneath it.
    public static func directory(_ path: String) throws -> FileDescriptor {
        try open(path, O_DIRECTORY | Beneath.pathOnly)
    }

    /// Opens `relative` beneath this directory (see `Beneath.open`).
    public func open(beneath relative: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = Beneath.open(raw, relative, flags: flags, mode: mode)
        guard fd >= 0 else { throw SystemError("open", path + "/" + relative, errno: -fd) }
        return FileDescriptor(raw: fd, path: path + "/" + relative)
    }
}
