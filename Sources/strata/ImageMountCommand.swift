import ArgumentParser
import Foundation
import Mirage
import StrataLayers
import StrataStore
import VLFS
import VLFSFuse
#if canImport(Glibc)
import Glibc
#endif

/// Mirage's virtual mount: an image served read-only straight from the home store, without checking
/// it out. It is a VLFS whose only layer is the image's filesystem, over an empty private layer that
/// the read-only mount never lets anything write to.
struct ImageMount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount", abstract: "Mount an image read-only, straight from the store.",
        discussion: """
            Without --foreground, returns once the filesystem answers; unmount with 'strata umount'. While \
            mounted, gc keeps the image's objects even if the image is deleted. The daemon logs to \
            $STRATA_HOME/mounts/daemon.log. The mount is for inspection: read-only, nosuid, nodev, and \
            readable by other users only if the image is granted to everyone ('strata image grant NAME \
            everyone --checkout').
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The image.") var image: String
    @Argument(help: "An existing, empty directory.") var mountpoint: String
    @Flag(help: "Serve in this process until unmounted.") var foreground = false
    @Flag(name: .customLong("private-layer"), help: "Serve the image's private layer (of a VLFS snapshot) instead of its filesystem.")
    var privateLayer = false

    func run() throws {
        let catalog = try options.catalog()
        let version = try catalog.resolve(try ImageReference(parsing: image), for: .checkout, by: .current)
        guard version.state == .active else { throw CatalogError("image \(version.reference) is deleted; its objects may be gone") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CatalogError("\(mountpoint): mountpoint must be an existing directory")
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw CatalogError("/dev/fuse is not available: cannot mount a FUSE filesystem here") }
        if isMounted(mountpoint) { throw CatalogError("\(mountpoint) is busy: something is mounted there already") }
        let absolute = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        if foreground { return try serve(version, catalog: catalog, mountpoint: absolute) }
        let mounts = options.strataHome.path + "/mounts"
        try makeDirectories(mounts, mode: 0o700)
        try startMountDaemon(arguments: ["strata", "image", "mount", version.digest.description, absolute, "--foreground", "--home", options.strataHome.path]
                                + (privateLayer ? ["--private-layer"] : []),
                             log: mounts + "/daemon.log", mountpoint: absolute)
    }

    private func serve(_ version: ImageVersion, catalog: Catalog, mountpoint: String) throws {
        let image = try catalog.manifest(of: version)
        var manifest = image
        if privateLayer {
            guard let root = image.privateLayer else { throw CatalogError("image \(version.reference) has no private layer: it is not a VLFS snapshot") }
            manifest.filesystem = root
        }
        // The scratch directory names the image, which holds its objects against gc while this process lives.
        let scratch = "\(options.strataHome.path)/mounts/\(getpid())"
        try makeDirectories(scratch, mode: 0o700)
        defer { try? removeTree(scratch) }
        try AtomicFile.write(version.digest.description + "\n", to: scratch + "/image")
        let metadata = try (try? LayerMetadata(name: version.name.lowercased(), version: DebianVersion(String(version.version))))
            ?? LayerMetadata(name: "image", version: DebianVersion(String(version.version)))
        let layer = SharedLayer(repository: "catalog", metadata: metadata, digest: version.digest, root: manifest.filesystem, store: catalog.store, kind: .software)
        let union = try Union(stack: try LayerStack(layers: [layer], whiteoutDirectory: scratch + "/whiteouts"),
                              privateRoot: scratch + "/private", whiteoutDirectory: scratch + "/whiteouts")
        // The private root stands for the image's root directory: give it the root's metadata.
        try Checkout(into: union.privateRoot, from: catalog.store).applyMetadata(manifest.filesystem, at: "")
        // Other users get in only if the catalog lets everyone check this content out (under any of
        // the images holding it); the kernel cannot tell apart the users an access list names.
        let everyone = (try? catalog.resolve(.digest(version.digest), for: .checkout, by: .everyone)) != nil
        let fuse = try FuseMount(union: union, mountpoint: mountpoint, fsName: "strata-image:\(version.reference)",
                                 use: .inspection(everyone: everyone))
        fuse.run()
        fuse.close()
    }
}
