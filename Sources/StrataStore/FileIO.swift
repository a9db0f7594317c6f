import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An owned file descriptor, closed when the value goes away.
public struct FileDescriptor: ~Copyable {
    public let raw: Int32
    public let path: String

    public init(raw: Int32, path: String) {
        self.raw = raw
        self.path = path
    }

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644, relativeTo directory: Int32 = AT_FDCWD) throws -> FileDescriptor {
        let fd = try sys("open", path) { Glibc.openat(directory, path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(raw: fd, path: path)
    }

    /// Opens `name`, one name in this directory, never following it if it is a symlink (ELOOP, or
    /// ENOTDIR with O_DIRECTORY).
    public func open(at name: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let path = self.path + "/" + name
        let fd = try sys("open", path) { Glibc.openat(raw, name, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
        return FileDescriptor(raw: fd, path: path)
    }

    deinit { Glibc.close(raw) }

    public func sync() throws { _ = try sys("fsync", path) { fsync(raw) } }

    public func stat() throws -> stat {
        var st = Glibc.stat()
        _ = try sys("fstat", path) { fstat(raw, &st) }
        return st
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try sys("read", path) { Glibc.read(raw, buffer.baseAddress, buffer.count) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try sys("write", path) { Glibc.write(raw, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }

    /// The whole file: as many bytes as `fstat` reports, or, for files that report no size (`/proc`),
    /// everything up to the end.
    public func readAll() throws -> [UInt8] {
        try readAll(limit: Int.max)
    }

    /// The whole file, refused (EFBIG) when `fstat` reports more than `limit` bytes.
    public func readAll(limit: Int) throws -> [UInt8] {
        let size = Int(try stat().st_size)
        guard size <= limit else { throw SystemError("read", path, errno: EFBIG) }
        if size == 0 { return try readToEnd() }
        var out = [UInt8](repeating: 0, count: size)
        var filled = 0
        try out.withUnsafeMutableBytes { buffer in
            while filled < size {
                let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                if n == 0 { break }
                filled += n
            }
        }
        if filled < size { out.removeLast(size - filled) }
        return out
    }

    private func readToEnd() throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if count == 0 { return out }
            out += chunk[..<count]
        }
    }
}

/// Copies `size` bytes between descriptors in the kernel where it can (`copy_file_range`, which
/// reflinks on filesystems that can), and by reading and writing where it cannot (across filesystems).
public func copyContents(from source: Int32, to destination: Int32, size: UInt64) throws {
    var remaining = Int(size)
    while remaining > 0 {
        let copied = copy_file_range(source, nil, destination, nil, remaining, 0)
        if copied > 0 {
            remaining -= copied
            continue
        }
        if copied == 0 { throw StoreError("a file's source is shorter than its manifest says (\(remaining) bytes missing)") }
        if errno == EINTR { continue }
        guard errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP else { throw SystemError("copy_file_range", "descriptor \(destination)") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while remaining > 0 {
            let count = try sys("read", "descriptor \(source)") { read(source, buffer.baseAddress, min(buffer.count, remaining)) }
            if count == 0 { throw StoreError("a file's source is shorter than its manifest says (\(remaining) bytes missing)") }
            var written = 0
            while written < count {
                written += try sys("write", "descriptor \(destination)") { write(destination, buffer.baseAddress! + written, count - written) }
            }
            remaining -= count
        }
    }
}

/// Atomic replacement of small files (indexes, LDFs, configuration, refs):
/// write a temporary file beside the target, fsync it, rename it over the target, fsync the directory.
public enum AtomicFile {
    /// - Parameter replace: false to refuse an existing target (EEXIST): the temporary file is then
    ///   linked into place instead of renamed, which fails rather than overwrite, with no race.
    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, replace: Bool = true) throws {
        let (directory, name) = split(path)
        let temporary = "\(directory)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            try bytes.withUnsafeBytes { try fd.write($0) }
            _ = try sys("fchmod", temporary) { fchmod(fd.raw, mode) }
            try fd.sync()
            if replace {
                _ = try sys("rename", path) { rename(temporary, path) }
            } else {
                _ = try sys("link", path) { link(temporary, path) }
                unlink(temporary)
            }
        } catch {
            unlink(temporary)
            throw error
        }
        try syncDirectory(directory)
    }

    /// The directory (`.` for none) and name of `path`. Not NSString's path accessors: they trap on
    /// a one-character relative name ("k") in this Foundation, and users type such names.
    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (slash == path.startIndex ? "/" : String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    public static func write(_ text: String, to path: String, mode: mode_t = 0o644, replace: Bool = true) throws {
        try write(Array(text.utf8), to: path, mode: mode, replace: replace)
    }

    /// Writes many files, each atomically, with one `syncfs` for all of them instead of two syncs each
    /// (provisioning a thousand appliances writes two thousand small files): every file is written
    /// under a temporary name, the filesystem synced once, then each renamed into place and each
    /// directory synced once. After a crash a file is absent or whole.
    public static func writeAll(_ files: [(path: String, bytes: [UInt8])], mode: mode_t = 0o644) throws {
        var temporaries: [String] = []
        defer { for temporary in temporaries { unlink(temporary) } }
        for file in files {
            let directory = (file.path as NSString).deletingLastPathComponent
            let temporary = "\(directory)/.\((file.path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let fd = try FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
            temporaries.append(temporary)
            try file.bytes.withUnsafeBytes { try fd.write($0) }
            _ = try sys("fchmod", temporary) { fchmod(fd.raw, mode) }
        }
        guard let first = files.first else { return }
        let filesystem = try FileDescriptor.open((first.path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
        _ = try sys("syncfs", first.path) { syncfs(filesystem.raw) }
        for (index, file) in files.enumerated() {
            _ = try sys("rename", file.path) { rename(temporaries[index], file.path) }
        }
        temporaries = []
        for directory in Set(files.map { ($0.path as NSString).deletingLastPathComponent }) { try syncDirectory(directory) }
    }

    public static func syncDirectory(_ path: String) throws {
        let fd = try FileDescriptor.open(path, O_RDONLY | O_DIRECTORY)
        try fd.sync()
    }
}

/// Creates a new directory with a unique name, `parent/PREFIXxxxxxx` (mode 0700), and returns its path.
public func temporaryDirectory(in parent: String, prefix: String) throws -> String {
    var template = Array((parent + "/" + prefix + "XXXXXX").utf8CString)
    guard mkdtemp(&template) != nil else { throw SystemError("mkdtemp", parent + "/" + prefix + "XXXXXX") }
    return String(cString: template)
}

/// Creates a directory and its parents; existing directories are fine.
public func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
    if mkdir(path, mode) == 0 || errno == EEXIST { return }
    guard errno == ENOENT else { throw SystemError("mkdir", path) }
    let parent = (path as NSString).deletingLastPathComponent
    if parent.isEmpty || parent == path { throw SystemError("mkdir", path) }
    try makeDirectories(parent, mode: mode)
    if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
}
