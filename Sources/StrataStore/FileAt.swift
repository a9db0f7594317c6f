#if canImport(Glibc)
import Glibc
#endif

/// A file acted on where it is, never through a final symlink: a descriptor held open, or one name in
/// a directory held open (or, for callers that only have a path, a path from the working directory).
/// It borrows the descriptor's number: the descriptor must stay open while this is used.
public struct FileAt: Sendable {
    let directory: Int32
    /// nil when `directory` is the file itself.
    let name: String?
    /// Names the file in errors.
    public let path: String

    public static func descriptor(_ file: borrowing FileDescriptor) -> FileAt {
        FileAt(descriptor: file.raw, path: file.path)
    }

    /// A descriptor held open (O_PATH ones included), named `path` in errors.
    public init(descriptor: Int32, path: String) {
        self.init(directory: descriptor, name: nil, path: path)
    }

    public static func name(_ name: String, in directory: borrowing FileDescriptor) -> FileAt {
        FileAt(directory: directory.raw, name: name, path: directory.path + "/" + name)
    }

    /// One name in a directory whose descriptor the caller holds; errors name just `name`.
    public static func name(_ name: String, inDirectory directory: Int32) -> FileAt {
        FileAt(directory: directory, name: name, path: name)
    }

    public init(path: String) {
        self.init(directory: AT_FDCWD, name: path, path: path)
    }

    private init(directory: Int32, name: String?, path: String) {
        self.directory = directory
        self.name = name
        self.path = path
    }

    public func stat() throws -> stat {
        var st = Glibc.stat()
        if let name {
            _ = try sys("lstat", path) { fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) }
        } else {
            _ = try sys("fstat", path) { fstat(directory, &st) }
        }
        return st
    }

    public func changeOwner(uid: UInt32, gid: UInt32) throws {
        if let name {
            _ = try sys("lchown", path) { fchownat(directory, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
        } else {
            _ = try sys("fchown", path) { fchown(directory, uid, gid) }
        }
    }

    /// Fails with EOPNOTSUPP on a symlink, whose mode Linux cannot change.
    public func changeMode(_ mode: mode_t) throws {
        if let name {
            _ = try sys("chmod", path) { fchmodat(directory, name, mode, AT_SYMLINK_NOFOLLOW) }
        } else {
            _ = try sys("fchmod", path) { fchmod(directory, mode) }
        }
    }

    /// Access and modification times.
    public func setTimes(_ times: [timespec]) throws {
        if let name {
            _ = try sys("utimensat", path) { utimensat(directory, name, times, AT_SYMLINK_NOFOLLOW) }
        } else {
            _ = try sys("futimens", path) { futimens(directory, times) }
        }
    }

    /// Where its extended attributes are read and written.
    public var attributes: ExtendedAttributes.Target {
        guard let name else { return .descriptor(directory) }
        return directory == AT_FDCWD ? .path(name) : .entry(name, in: directory, path: path)
    }

    /// The target of a symlink `size` bytes long (its st_size), as text.
    public func readLink(size: Int) throws -> String {
        var buffer = [UInt8](repeating: 0, count: max(size, 255) + 1)
        let length = try sys("readlink", path) { readlinkat(directory, name ?? "", &buffer, buffer.count) }
        guard let target = String(validating: buffer[..<length], as: UTF8.self) else {
            throw StoreError("\(path): symlink target is not valid UTF-8")
        }
        return target
    }
}
