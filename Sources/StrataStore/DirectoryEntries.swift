#if canImport(Glibc)
import Glibc
#endif

/// One name in a directory listing, as the kernel gave it: not necessarily UTF-8, so kept as bytes
/// (NUL-terminated, ready for *at() calls) until someone needs text.
public struct DirectoryEntry: Sendable {
    public let name: [CChar]
    /// DT_DIR, DT_REG, …; DT_UNKNOWN where the filesystem does not say. A hint only: the entry may
    /// have been replaced since it was listed.
    public let type: UInt8

    /// The name as text, or nil when it is not valid UTF-8.
    public var text: String? {
        name.dropLast().withUnsafeBytes { String(validating: $0, as: UTF8.self) }
    }

    /// The name for messages, with invalid UTF-8 replaced.
    public var displayName: String {
        name.dropLast().withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}

extension FileDescriptor {
    /// The entries of this directory (opened for reading, not O_PATH), without `.` and `..`. Read
    /// through a duplicate descriptor, so this one stays open for *at() calls on the entries.
    public func entries() throws -> [DirectoryEntry] {
        let copy = try sys("dup", path) { fcntl(raw, F_DUPFD_CLOEXEC, 0) }
        guard let handle = fdopendir(copy) else {
            close(copy)
            throw SystemError("fdopendir", path)
        }
        defer { closedir(handle) }
        // The duplicate shares this descriptor's offset, which an earlier listing left at the end.
        rewinddir(handle)
        var entries: [DirectoryEntry] = []
        while true {
            errno = 0
            guard let dirent = readdir(handle) else {
                if errno != 0 { throw SystemError("readdir", path) }
                return entries
            }
            let name = withUnsafeBytes(of: dirent.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            entries.append(DirectoryEntry(name: name + [0], type: dirent.pointee.d_type))
        }
    }
}
