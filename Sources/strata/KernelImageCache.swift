import Foundation
import Mirage
import StrataLayers
import StrataLifecycle
import StrataResolver
import StrataStore
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// The kernel path's metadata images, `$STRATA_HOME/cache/erofs/KEY.erofs`, named by what their bytes
/// depend on (`MetadataTree.key`). Each VLFS mounted on the kernel path records the image it mounted
/// (`vlfs/NAME/kernel/image`); gc keeps those, for the next mount of that VLFS, and frees the rest: images
/// of stacks no VLFS composes any more, and builds a killed mount left behind. An image a mounted
/// overlayfs still uses stays readable after its name is gone: the mount holds the file.
enum KernelImageCache {
    static func directory(_ home: StrataHome) -> String { home.path + "/cache/erofs" }
    static func record(_ state: VLFSState) -> String { KernelPath.State(state).directory + "/image" }
    private static let suffix = ".erofs"
    private static let buildPrefix = "build-"

    /// The image of `tree`, built first when missing, and recorded as `state`'s. Under the home's shared
    /// lock, so that gc, which takes it exclusively, sees either no image or a recorded one.
    static func image(of tree: MetadataTree, for state: VLFSState, home: StrataHome) throws -> (path: String, reused: Bool) {
        try HomeLock.withShared(home) {
            let cache = directory(home)
            let name = tree.key.hex + suffix
            let image = cache + "/" + name
            let reused = access(image, F_OK) == 0
            if !reused { try build(tree, into: cache, as: image) }
            try AtomicFile.write(name + "\n", to: record(state))
            return (image, reused)
        }
    }

    private static func build(_ tree: MetadataTree, into cache: String, as image: String) throws {
        guard access(KernelPath.mkfs, X_OK) == 0 else { throw LayerError("\(KernelPath.mkfs) is missing: the kernel path needs erofs-utils") }
        let build = "\(cache)/\(buildPrefix)\(getpid())"
        try? removeTree(build)
        try makeDirectories(build, mode: 0o700)
        defer { try? removeTree(build) }
        try tree.write(to: build + "/tree", scratch: build + "/union")
        // erofs-utils 1.5 stores a sparse file's holes whole; compressed, with tails packed into the inode,
        // the holes of a file cost a few bytes (smaller and faster than its chunked files, whose zero chunks
        // are hashed and deduplicated: docs/BENCHMARKS.md). Extended inodes keep each file's own mtime.
        _ = try runProgram(KernelPath.mkfs, ["--quiet", "-Eforce-inode-extended", "--preserve-mtime", "-zlz4", "-Eztailpacking", build + "/image", build + "/tree"])
        try FileDescriptor.open(build + "/image", O_RDONLY).sync()
        _ = try sys("rename", image) { rename(build + "/image", image) }
        try AtomicFile.syncDirectory(cache)
    }

    /// Frees the images no VLFS records and every unfinished build. The caller holds the home's lock
    /// exclusively, so no mount is building one. In gc's report shape: images as objects, kept as reachable.
    static func collect(_ home: StrataHome, dryRun: Bool) throws -> CollectionReport? {
        let cache = directory(home)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: cache) else { return nil }
        let vlfsNames = (try? FileManager.default.contentsOfDirectory(atPath: home.path + "/vlfs")) ?? []
        let recorded = Set(vlfsNames.compactMap { name -> String? in
            guard let state = try? VLFSState(home: home, name: name),
                  let text = try? String(contentsOfFile: record(state), encoding: .utf8) else { return nil }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        })
        var report = CollectionReport(store: cache)
        for name in names.sorted() {
            let path = cache + "/" + name
            if name.hasPrefix(buildPrefix) {
                report.freedBytes += treeBytes(path)
                if !dryRun { try removeTree(path) }
                continue
            }
            guard name.hasSuffix(suffix), let key = Digest(name.dropLast(suffix.count)) else { continue }
            report.objects += 1
            if recorded.contains(name) {
                report.reachable += 1
                continue
            }
            var st = stat()
            if lstat(path, &st) == 0 { report.freedBytes += UInt64(st.st_blocks) * 512 }
            if !dryRun { _ = try sys("unlink", path) { unlink(path) } }
            report.freedObjects += 1
            report.freed.append(key)
        }
        if !dryRun, report.freedBytes > 0 { try AtomicFile.syncDirectory(cache) }
        return report
    }

    /// The space a directory's files take (an unfinished build: its tree of holes and a partial image).
    private static func treeBytes(_ path: String) -> UInt64 {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total: UInt64 = 0
        for case let relative as String in walker {
            var st = stat()
            if lstat(path + "/" + relative, &st) == 0 { total += UInt64(st.st_blocks) * 512 }
        }
        return total
    }
}
