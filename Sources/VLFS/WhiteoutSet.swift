import Foundation
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The whiteout layer of one shared layer instance: the paths of that layer that are deleted in this
/// VLFS. Kept in memory as a set and on disk as a list, one path a line: a whiteout appends a line (a
/// single small `O_APPEND` write, synced), a revert rewrites the list atomically.
public final class WhiteoutSet: Sendable {
    public let file: String
    private let paths: Mutex<Set<String>>

    public init(file: String) throws {
        self.file = file
        var loaded = Set<String>()
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
            for line in text.split(separator: "\n") where !line.isEmpty { loaded.insert(String(line)) }
        }
        paths = Mutex(loaded)
    }

    public var isEmpty: Bool { paths.withLock { $0.isEmpty } }
    public var all: Set<String> { paths.withLock { $0 } }

    public func contains(_ path: String) -> Bool {
        paths.withLock { $0.contains(path) }
    }

    /// Records a whiteout; for a directory, the whiteouts beneath it become redundant and are dropped.
    public func add(_ path: String, isDirectory: Bool) throws {
        let isNew = paths.withLock { set -> Bool in
            guard set.insert(path).inserted else { return false }
            if isDirectory {
                let prefix = path + "/"
                set = set.filter { !$0.hasPrefix(prefix) }
            }
            return true
        }
        guard isNew else { return }
        let fd = Glibc.open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", file) }
        defer { Glibc.close(fd) }
        let line = Array((path + "\n").utf8)
        var st = stat()
        let isNewFile = fstat(fd, &st) == 0 && st.st_size == 0
        guard line.withUnsafeBytes({ Glibc.write(fd, $0.baseAddress, $0.count) }) == line.count else { throw SystemError("write", file) }
        // Durable before the unlink that made it returns: after a crash the name must stay deleted.
        guard fdatasync(fd) == 0 else { throw SystemError("fdatasync", file) }
        if isNewFile {
            let directory = (file as NSString).deletingLastPathComponent
            for path in [directory, (directory as NSString).deletingLastPathComponent] { try AtomicFile.syncDirectory(path) }
        }
    }

    /// Removes the whiteout of `path` and of everything beneath it; true if any was removed.
    @discardableResult
    public func remove(_ path: String) throws -> Bool {
        let remaining = paths.withLock { set -> Set<String>? in
            let prefix = path + "/"
            let kept = set.filter { $0 != path && !$0.hasPrefix(prefix) }
            guard kept.count != set.count else { return nil }
            set = kept
            return kept
        }
        guard let remaining else { return false }
        try AtomicFile.write(remaining.sorted().map { $0 + "\n" }.joined(), to: file, mode: 0o600)
        return true
    }
}
