import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// What one collection did (or, dry, would do) to one store.
public struct CollectionReport: Sendable, Codable {
    public var store: String
    public var objects = 0
    public var reachable = 0
    public var freedObjects = 0
    public var freedBytes: UInt64 = 0
    /// Objects the roots need that are not there (fsck's business; reported, never fatal here).
    public var missing = 0
    /// Why the store was left alone, when it was.
    public var skipped: String?
    /// The objects freed, for `--json`.
    public var freed: [Digest] = []

    public init(store: String) { self.store = store }
}

/// Mark and sweep over one store: everything its roots reach through manifests is kept, the rest goes.
public enum GarbageCollector {
    public static func collect(_ store: ObjectStore, roots: [(name: String, digest: Digest)], dryRun: Bool) throws -> CollectionReport {
        var report = CollectionReport(store: store.root)
        if let writer = liveWriter(store) {
            report.skipped = "process \(writer) is writing objects into it; run gc again when it is done"
            return report
        }
        let reachability = Reachability(store: store, roots: roots)
        report.reachable = reachability.reached.count - reachability.missing.count
        report.missing = reachability.missing.count
        for digest in try store.allObjects() {
            report.objects += 1
            if reachability.reached.contains(digest) { continue }
            var st = stat()
            if lstat(store.path(of: digest), &st) == 0 { report.freedBytes += UInt64(st.st_size) }
            if !dryRun { try store.remove(digest) }
            report.freedObjects += 1
            report.freed.append(digest)
        }
        report.freed.sort()
        return report
    }

    /// A live process with a staging directory in the store: its objects may appear at any moment,
    /// before whatever will root them (a repository's index row) is written.
    static func liveWriter(_ store: ObjectStore) -> Int32? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: store.root + "/tmp") else { return nil }
        for name in names where name.hasPrefix("stage-") {
            let fields = name.split(separator: "-")
            guard fields.count >= 3, let pid = Int32(fields[1]), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { return pid }
        }
        return nil
    }
}
