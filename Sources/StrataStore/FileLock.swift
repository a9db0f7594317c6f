import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock (`flock`) on a file, made if missing, held while `body` runs.
public enum FileLock {
    public static func withShared<T>(_ path: String, _ body: () throws -> T) throws -> T { try with(path, LOCK_SH, body) }

    public static func withExclusive<T>(_ path: String, _ body: () throws -> T) throws -> T { try with(path, LOCK_EX, body) }

    private static func with<T>(_ path: String, _ operation: Int32, _ body: () throws -> T) throws -> T {
        // Opened read-only when it exists, so users without write access to its directory can take it too.
        var fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw SystemError("open", path) }
        defer { close(fd) }
        while flock(fd, operation) != 0 {
            guard errno == EINTR else { throw SystemError("flock", path) }
        }
        return try body()
    }
}
