#if canImport(Glibc)
import Glibc
#endif

/// Removes a file or a directory tree; a missing path is fine. The tree is walked by directory
/// descriptors (never by paths built from what was listed), so swapping one of its directories for a
/// symlink while this runs cannot turn it onto files elsewhere: no symlink is followed, and a
/// filesystem mounted at or beneath `path` is refused, so a forgotten mount cannot be emptied by
/// accident. `path` itself is the caller's and is resolved as given, up to its last component.
public func removeTree(_ path: String) throws {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
    let slash = trimmed.lastIndex(of: "/")
    let name = String(slash.map { trimmed[trimmed.index(after: $0)...] } ?? trimmed)
    let parent = slash.map { $0 == trimmed.startIndex ? "/" : String(trimmed[..<$0]) } ?? "."
    guard !name.isEmpty, name != ".", name != ".." else { throw StoreError("\(path): not something removeTree can remove") }
    let directory: FileDescriptor
    do {
        directory = try FileDescriptor.open(parent, O_RDONLY | O_DIRECTORY)
    } catch let error as SystemError where error.errno == ENOENT {
        return
    }
    try TreeRemoval.remove(name, type: UInt8(DT_UNKNOWN), in: directory, path: path)
}

/// Removes `relative` beneath `directory`, and everything below it; a missing entry is fine. The
/// path is resolved with `Beneath`: `..`, a symlink or a mount on the way is refused, not followed.
public func removeTree(in directory: borrowing FileDescriptor, _ relative: String) throws {
    let (parentPath, name) = Beneath.split(try Beneath.normalize(relative))
    guard !name.isEmpty else { throw StoreError("\(directory.path): removeTree needs a path beneath the directory, not the directory itself") }
    let fd = Beneath.open(directory.raw, parentPath, flags: O_RDONLY | O_DIRECTORY)
    if fd == -ENOENT { return }
    let parent = parentPath.isEmpty ? directory.path : directory.path + "/" + parentPath
    guard fd >= 0 else { throw SystemError("open", parent, errno: -fd) }
    try TreeRemoval.remove(name, type: UInt8(DT_UNKNOWN), in: FileDescriptor(raw: fd, path: parent), path: parent + "/" + name)
}

enum TreeRemoval {
    /// Removes `name` in `directory` (open for reading); `type` is what a listing said it was.
    static func remove(_ name: UnsafePointer<CChar>, type: UInt8, in directory: borrowing FileDescriptor, path: String) throws {
        if type != DT_DIR {
            if unlinkat(directory.raw, name, 0) == 0 || errno == ENOENT { return }
            guard errno == EISDIR else { throw SystemError("unlink", path) }
        }
        guard let child = try openDirectory(name, in: directory, path: path) else { return }
        let st = try child.stat()
        // Without write and search permission on it, its owner (when not root) could not empty it.
        if st.st_mode & 0o300 != 0o300 { _ = try sys("fchmod", path) { fchmod(child.raw, st.st_mode | 0o700) } }
        for entry in try child.entries() {
            try remove(entry.name, type: entry.type, in: child, path: path + "/" + entry.displayName)
        }
        if unlinkat(directory.raw, name, AT_REMOVEDIR) != 0 && errno != ENOENT { throw SystemError("rmdir", path) }
    }

    /// The directory to empty, or nil if it is gone or was replaced by a non-directory that is now
    /// unlinked instead.
    private static func openDirectory(_ name: UnsafePointer<CChar>, in directory: borrowing FileDescriptor, path: String) throws -> FileDescriptor? {
        var fd = Beneath.openAt2(directory.raw, name, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        if fd == -EACCES {
            // A directory its owner (not root) made unreadable: give it back to the owner first.
            _ = try sys("chmod", path) { fchmodat(directory.raw, name, 0o700, AT_SYMLINK_NOFOLLOW) }
            fd = Beneath.openAt2(directory.raw, name, flags: O_RDONLY | O_DIRECTORY, mode: 0)
        }
        if fd >= 0 { return FileDescriptor(raw: fd, path: path) }
        switch -fd {
        case ENOENT:
            return nil
        case ELOOP, ENOTDIR:
            // Swapped for a symlink or a file since it was listed: remove that, never what it points to.
            _ = try sys("unlink", path) { unlinkat(directory.raw, name, 0) }
            return nil
        case EXDEV:
            throw StoreError("\(path): another filesystem is mounted here; not removing it")
        default:
            throw SystemError("open", path, errno: -fd)
        }
    }
}
