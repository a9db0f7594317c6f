import Foundation
import StrataLayers
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Keeps garbage collection of the home store away from writers. A writer (check-in, delta apply,
/// pull) holds the lock shared from its first object until the catalog row that roots them is
/// committed; `gc` holds it exclusively, so it never sees objects that are stored but not yet rooted.
public enum HomeLock {
    public static func withShared<T>(_ home: StrataHome, _ body: () throws -> T) throws -> T {
        try with(home, LOCK_SH, body)
    }

    public static func withExclusive<T>(_ home: StrataHome, _ body: () throws -> T) throws -> T {
        try with(home, LOCK_EX, body)
    }

    private static func with<T>(_ home: StrataHome, _ operation: Int32, _ body: () throws -> T) throws -> T {
        try makeDirectories(home.path)
        let path = home.path + "/gc.lock"
        // Opened read-only when it exists, so users without write access to the home can take it too.
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
