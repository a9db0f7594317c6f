import Foundation
import StrataLayers
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Watches an LDF and every template it includes, recursively, and calls back when one is rewritten:
/// a template's `ldf upgrade` reaches every mounted appliance built on it at once. Editors and
/// `strata ldf` replace files by rename, which a watch on the file itself would miss after the first
/// time, so inotify watches their directories and the names are matched here. After each change the
/// set of files is read again, since an edit may add or drop includes.
enum LDFWatcher {
    /// Changes arriving this close together are taken as one (an editor's write, rename and chmod).
    static let settle: Int32 = 100

    /// Without inotify (each daemon takes one instance, and root has 128 by default:
    /// `fs.inotify.max_user_instances`) the VLFS still mounts and says so in its log; it then takes LDF
    /// changes at `strata update`, and `fleet status` shows it pending meanwhile.
    static func watch(_ ldf: String, home: StrataHome, onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else {
            printError("warning: \(SystemError("inotify_init1", ldf)): changes to \(ldf) and its templates are taken at 'strata update' only")
            return
        }
        Thread { run(fd, ldf: ldf, home: home, onChange: onChange) }.start()
    }

    private static func run(_ fd: Int32, ldf: String, home: StrataHome, onChange: () -> Void) -> Never {
        var files = watchedFiles(ldf, home: home)
        var directories: [Int32: String] = [:]
        rewatch(fd, files: files, directories: &directories)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        while true {
            guard changed(fd, buffer, files: files, directories: &directories) else { continue }
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while poll(&ready, 1, settle) > 0 { _ = changed(fd, buffer, files: files, directories: &directories) }
            files = watchedFiles(ldf, home: home)
            rewatch(fd, files: files, directories: &directories)
            onChange()
        }
    }

    /// The LDF and the templates it includes now; a broken LDF still names itself (its next rewrite may mend it).
    private static func watchedFiles(_ ldf: String, home: StrataHome) -> Set<String> {
        let included = (try? home.loadExpanded(ldf))?.includeOrder.map(\.standardizedFileURL.path) ?? []
        return Set([ldf] + included)
    }

    private static func rewatch(_ fd: Int32, files: Set<String>, directories: inout [Int32: String]) {
        let wanted = Set(files.map { ($0 as NSString).deletingLastPathComponent })
        for (watch, directory) in directories where !wanted.contains(directory) {
            inotify_rm_watch(fd, watch)
            directories[watch] = nil
        }
        for directory in wanted where !directories.values.contains(directory) {
            let watch = inotify_add_watch(fd, directory, UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO))
            if watch >= 0 { directories[watch] = directory }
        }
    }

    /// Reads one batch of events (blocking until there is one): whether one of `files` was written or
    /// replaced. An overflowed queue may have lost such an event, so it counts as one.
    private static func changed(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, files: Set<String>, directories: inout [Int32: String]) -> Bool {
        let count = read(fd, buffer.baseAddress, buffer.count)
        guard count > 0 else {
            if count < 0 && errno != EINTR { usleep(100_000) }
            return false
        }
        var changed = false
        var offset = 0
        let header = MemoryLayout<inotify_event>.size
        while offset + header <= count {
            let watch = buffer.load(fromByteOffset: offset, as: Int32.self)
            let mask = buffer.load(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(buffer.load(fromByteOffset: offset + 12, as: UInt32.self))
            let nameBytes = UnsafeRawBufferPointer(rebasing: buffer[(offset + header)..<min(offset + header + length, count)])
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                changed = true
            } else if mask & UInt32(IN_IGNORED) != 0 {
                directories[watch] = nil
            } else if let directory = directories[watch], files.contains(directory + "/" + name) {
                changed = true
            }
            offset += header + length
        }
        return changed
    }
}
