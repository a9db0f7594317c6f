import CLinux
import Foundation
import StrataLayers
import StrataLifecycle
import StrataResolver
import StrataStore
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// `strata mount --kernel` (issue 14): a VLFS the kernel serves alone, for an appliance whose LDF is
/// pinned. The composed shared layers become an EROFS metadata image (`MetadataTree`, cached in the home
/// by what it depends on), mounted from its file, detached, as the lower layer of a kernel overlayfs whose
/// data-only lower layers are the stores' object directories and whose upper layer is the VLFS's
/// `kernel/upper`. No daemon: the mount is the overlayfs, and unmounting it ends everything.
enum KernelPath {
    /// The source the overlayfs shows in the mount table, as `strata:NAME` names a daemon's mount.
    static let sourcePrefix = "strata-kernel:"
    static let mkfs = "/usr/bin/mkfs.erofs"

    /// Where the kernel path keeps a VLFS's state, apart from the FUSE VLFS's private layer and whiteouts.
    struct State {
        let directory: String
        init(_ vlfs: VLFSState) { directory = vlfs.directory + "/kernel" }
        var upper: String { directory + "/upper" }
        var work: String { directory + "/work" }
        /// Always empty: the kernel path's deletions are overlayfs's whiteouts in `upper`.
        var whiteouts: String { directory + "/whiteouts" }
    }

    static func source(of state: VLFSState) -> String { sourcePrefix + state.name }

    /// Whether `mount` is `state`'s VLFS on the kernel path: its source names the VLFS and its upper
    /// directory is this home's (another home may mount a VLFS of the same name).
    static func isMount(_ mount: MountTable.Mount, of state: VLFSState) -> Bool {
        mount.source == source(of: state) && mount.options.contains("upperdir=" + State(state).upper)
    }

    /// Where `state`'s VLFS is mounted on the kernel path, if it is.
    static func mountpoint(of state: VLFSState) -> String? {
        MountTable.current().first(where: { isMount($0, of: state) })?.mountpoint
    }

    static func mount(ldf: String, state: VLFSState, home: StrataHome, mountpoint: String, fetch: FetchMode) throws {
        if let pid = state.daemonProcess() { throw LayerError("VLFS '\(state.name)' is mounted through its daemon (pid \(pid)): unmount it first") }
        // Every file is read from a local blob, with no daemon to fetch one that is missing.
        if fetch != .beforeMount {
            let partial = try Composition.plan(ldf: ldf, home: home).filter { !$0.repository.isWhole($0.record) }
            guard partial.isEmpty else {
                throw LayerError("the kernel path reads every file from the local store, and these layers are not whole in their mirrors: "
                    + partial.map(\.label).joined(separator: ", ") + "; mount with --fetch before-mount to mirror them first")
            }
        }
        let kernel = State(state)
        try makeDirectories(kernel.directory, mode: 0o700)
        let layers = try Composition.layers(ldf: ldf, home: home, depth: .whole, progress: Progress().fetchObserver)
        let stack = try Composition.stack(layers: layers, home: home, state: state, configuration: try ConfigurationState.load(state.configuration),
                                          whiteoutDirectory: kernel.whiteouts)
        let tree = MetadataTree(stack: stack)
        let (image, reused) = try KernelImageCache.image(of: tree, for: state, home: home)
        printError("strata: metadata image \(image) \(reused ? "reused" : "built")")
        try makeUpper(kernel, root: stack.layers.last?.root)
        try attach(image: image, dataDirectories: tree.dataDirectories, kernel: kernel, source: source(of: state), at: mountpoint)
        try state.recordLDF(ldf)
        try state.recordComposed(stack)
    }

    /// overlayfs shows the upper directory's root as the mount's root: made as the FUSE VLFS makes its
    /// private layer's, with the bottom layer's root owner and mode.
    private static func makeUpper(_ kernel: State, root: TreeEntry?) throws {
        var st = stat()
        guard lstat(kernel.upper, &st) != 0 else { return }
        try makeDirectories(kernel.upper, mode: 0o755)
        try makeDirectories(kernel.work, mode: 0o700)
        if let root {
            _ = try sys("chown", kernel.upper) { chown(kernel.upper, root.uid, root.gid) }
            _ = try sys("chmod", kernel.upper) { chmod(kernel.upper, mode_t(root.mode)) }
        }
    }

    /// Mounts the image from its file (no loop device), detached, and kernel overlayfs over it at
    /// `mountpoint`; the image's mount lives as long as the overlayfs holds it. Options go one by one
    /// (`lowerdir+`, `datadir+`, Linux ≥ 6.8), so no path needs escaping.
    private static func attach(image: String, dataDirectories: [String], kernel: State, source: String, at mountpoint: String) throws {
        let erofs = try NewMount.make("erofs", options: [("source", image)], attributes: STRATA_MOUNT_ATTR_RDONLY, what: image)
        let options: [(key: String, value: String?)] = [("source", source), ("lowerdir+", "/proc/self/fd/\(erofs.raw)")]
            + dataDirectories.map { ("datadir+", $0) }
            + [("upperdir", kernel.upper), ("workdir", kernel.work), ("metacopy", "on"), ("redirect_dir", "on")]
        let overlay = try NewMount.make("overlay", options: options, attributes: 0, what: mountpoint)
        let target = try FileDescriptor.open(mountpoint, O_RDONLY | O_DIRECTORY)
        _ = try sys("move_mount", mountpoint) { strata_attach_mount(overlay.raw, target.raw) }
    }
}
