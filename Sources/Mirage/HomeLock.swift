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
        try makeDirectories(home.path)
        return try FileLock.withShared(home.path + "/gc.lock", body)
    }

    public static func withExclusive<T>(_ home: StrataHome, _ body: () throws -> T) throws -> T {
        try makeDirectories(home.path)
        return try FileLock.withExclusive(home.path + "/gc.lock", body)
    }
}
