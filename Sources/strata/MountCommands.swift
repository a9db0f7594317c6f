import ArgumentParser
import CLinux
import Foundation
import Synchronization
import StrataLayers
import StrataLifecycle
import StrataStore
import VLFS
import VLFSFuse
#if canImport(Glibc)
import Glibc
#endif

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the VLFS an LDF describes.",
        discussion: """
            Composes the layers the LDF names (with its includes and implicit layers) over the VLFS's \
            private layer, kept in $STRATA_HOME/vlfs/NAME. Without --foreground, returns once the \
            filesystem answers; the daemon logs to $STRATA_HOME/vlfs/NAME/daemon.log.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The layer definition file; with --kernel, also vlfs:NAME for the LDF that VLFS was last mounted from.") var ldf: String
    @Argument(help: "An existing, empty directory.") var mountpoint: String
    @Option(help: "The VLFS's name (default: the LDF's file name without extension).") var name: String?
    @Flag(help: "Serve in this process until unmounted.") var foreground = false
    @Flag(help: "Serve every read through the daemon, never letting the kernel read shared files from their blobs (FUSE passthrough); for comparisons and kernels that misbehave.")
    var noPassthrough = false
    @Option(help: ArgumentHelp("Serve shared files smaller than this through the daemon, with the kernel keeping their pages (one copy per mount); only larger ones are read from their blobs. Fewer round trips for small files read and then stat'ed; 0 passes every shared file through.", valueName: "bytes"))
    var passthroughMinimumSize = FuseMount.defaultPassthroughMinimumSize
    @Flag(help: """
        Take FUSE requests over the kernel's io_uring queues (Linux 6.14+, with /sys/module/fuse/parameters/enable_uring Y) \
        instead of reading /dev/fuse; falls back to /dev/fuse, saying why in the log, where the kernel refuses. \
        Also on when STRATA_IO_URING=1.
        """)
    var ioUring = false
    @Flag(help: """
        Let the kernel cache writes to regular files and send them to the daemon later, merged (FUSE writeback caching; \
        snapshots and resets flush them first). The kernel then reads no shared file from its blob: it does not \
        combine writeback caching with passthrough. Also on when STRATA_WRITEBACK_CACHE=1.
        """)
    var writebackCache = false
    @Flag(inversion: .prefixedNo, help: """
        Open regular files through the daemon (OPEN and RELEASE requests), which lets the kernel read large shared files \
        from their blobs (passthrough). --no-open-requests lets the kernel open regular files itself: no round trip for \
        opening or closing a file, every file's pages kept across opens, every read through the daemon. \
        Default: --open-requests, or --no-open-requests where STRATA_NO_OPEN=1 is in the environment.
        """)
    var openRequests: Bool?
    @Option(help: "Seconds a client of the daemon's control socket has to send its request.")
    var controlTimeout = ControlChannel.Limits().requestTimeout
    @Flag(help: "Run no configuration scripts (nor dpkg) at mount or update; layers stay as their state says.")
    var noConfigure = false
    @Option(help: """
        When files of layers from served repositories are fetched: lazy (serve at once, fetch a file when first opened, \
        the rest in the background), on-open (only what is opened), before-mount (mirror every layer whole first).
        """)
    var fetch: FetchMode = .lazy
    @Flag(help: "Serve it with kernel overlayfs over an EROFS metadata image of the composed layers, with no daemon, for an appliance whose LDF is pinned (see README: the kernel path).")
    var kernel = false
    /// The root filesystem of a network-booted appliance: the daemon must outlive the appliance's init,
    /// which at shutdown kills every process but those whose argv[0] starts with '@' (systemd's
    /// convention for root-storage daemons).
    @Flag(help: .hidden) var rootStorage = false

    static let namedVLFS = "vlfs:"

    var usesIoUring: Bool { ioUring || ProcessInfo.processInfo.environment["STRATA_IO_URING"] == "1" }
    var usesWritebackCache: Bool { writebackCache || ProcessInfo.processInfo.environment["STRATA_WRITEBACK_CACHE"] == "1" }
    var kernelOpensFiles: Bool { openRequests.map { !$0 } ?? (ProcessInfo.processInfo.environment["STRATA_NO_OPEN"] == "1") }

    var vlfsName: String {
        if ldf.hasPrefix(Mount.namedVLFS) { return String(ldf.dropFirst(Mount.namedVLFS.count)) }
        return name ?? URL(fileURLWithPath: ldf).deletingPathExtension().lastPathComponent
    }

    func validate() throws {
        guard controlTimeout > 0 else { throw ValidationError("--control-timeout must be at least 1 second") }
        if kernel, foreground || noPassthrough || writebackCache || rootStorage {
            throw ValidationError("--kernel mounts have no daemon: --foreground, --no-passthrough and --writeback-cache do not apply")
        }
        if ldf.hasPrefix(Mount.namedVLFS), !kernel || name != nil { throw ValidationError("vlfs:NAME is for --kernel mounts, without --name") }
        // A writeback mount keeps readers of a shared file apart from a writer that copies it up by
        // failing the writer's OPEN, which a kernel that opens files itself never sends.
        if usesWritebackCache, kernelOpensFiles { throw ValidationError("--writeback-cache needs open requests: it does not go with --no-open-requests (nor STRATA_NO_OPEN=1)") }
    }

    func run() throws {
        let home = options.strataHome
        let state = try VLFSState(home: home, name: vlfsName)
        let ldfPath = ldf.hasPrefix(Mount.namedVLFS) ? try state.ldf() : URL(fileURLWithPath: ldf).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: ldfPath) else { throw LayerError("\(ldfPath): no such file") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LayerError("\(mountpoint): mountpoint must be an existing directory")
        }
        if let mounted = KernelPath.mountpoint(of: state) {
            throw LayerError("VLFS '\(state.name)' is mounted on the kernel path at \(mounted): unmount it first")
        }
        if kernel {
            let target = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
            if isMounted(target) { throw LayerError("\(mountpoint) is busy: something is mounted there already") }
            return try KernelPath.mount(ldf: ldfPath, state: state, home: home, mountpoint: target, fetch: fetch)
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw LayerError("/dev/fuse is not available: cannot mount a FUSE filesystem here") }
        if isMounted(mountpoint) { throw LayerError("\(mountpoint) is busy: something is mounted there already") }
        guard ControlChannel.fits(state.controlSocket) else {
            throw LayerError("\(state.controlSocket): too long for a Unix socket (108 bytes); use a shorter Strata home or VLFS name")
        }
        // Compose first, so that a bad LDF or a conflict is reported here and not in a daemon log.
        let stack = try Composition.stack(ldf: ldfPath, home: home, state: state, depth: fetch.depth, progress: Progress().fetchObserver)
        // The trees composing fetched stay for the daemon, which composes again.
        RemoteObjects.commitAllStaged()
        if foreground {
            try serve(stack: stack, state: state, ldfPath: ldfPath, home: home)
        } else {
            try startDaemon(state: state)
            if !noConfigure { try reportConfiguration(state: state) }
        }
    }

    /// Waits for the daemon's first configuration and says what it ran on stderr.
    private func reportConfiguration(state: VLFSState) throws {
        guard let reply = try ControlChannel.send("configured", to: state.controlSocket) else { return }
        guard reply.hasPrefix("ok") else { throw LayerError("configuring \(state.name): \(ControlChannel.failure(reply))") }
        for step in reply.split(separator: ";").dropFirst() { printError("configured:" + step) }
        if reply.contains(" failed") { printError("some layers are not configured: see `strata configure \(state.name)` and \(Configurator.log(in: state.directory))") }
    }

    private func serve(stack: LayerStack, state: VLFSState, ldfPath: String, home: StrataHome) throws {
        try state.recordLDF(ldfPath)
        let union = try Union(stack: stack, privateRoot: state.privateRoot, whiteoutDirectory: state.whiteouts)
        try union.discardUnfinishedCopies()
        try state.recordComposed(stack)
        let fuse = try FuseMount(union: union, mountpoint: URL(fileURLWithPath: mountpoint).standardizedFileURL.path, fsName: "strata:\(state.name)",
                                 use: .appliance, passthrough: !noPassthrough, passthroughMinimumSize: passthroughMinimumSize,
                                 ioUring: usesIoUring, writebackCache: usesWritebackCache, kernelOpensFiles: kernelOpensFiles, log: printError)
        // Requests that change the VLFS (updates from the control socket and from the LDF watcher,
        // reverts, snapshots, resets) take this lock, one at a time: each reads the stack or the private
        // layer and replaces or captures it, and two at once would lose one's work. `status` only reads
        // the stack, which the union swaps atomically, so it answers while a long update runs.
        let changes = Mutex(())
        let configuration = try DaemonConfiguration(union: union, fuse: fuse, state: state, home: home, mountpoint: fuse.mountpoint)
        let noConfigure = noConfigure
        let depth = fetch.depth
        let fetching = LazyFetching(union: union, state: state, home: home, ldf: ldfPath, mode: fetch)
        let update: @Sendable () -> String = {
            defer { fetching.layersChanged() }
            return changes.withLock { _ in
                do {
                    if !noConfigure {
                        let reply = configuration.transition(to: try Composition.layers(ldf: ldfPath, home: home, depth: depth))
                        try state.recordComposed(union.stack)
                        return reply
                    }
                    let stack = try Composition.stack(ldf: ldfPath, home: home, state: state, depth: depth)
                    let paths = try union.replaceStack(stack)
                    fuse.invalidate(paths: paths)
                    try state.recordComposed(stack)
                    return "ok \(paths.count) paths changed"
                } catch {
                    return "error: \(error)"
                }
            }
        }
        try ControlChannel.serve(at: state.controlSocket, limits: ControlChannel.Limits(requestTimeout: controlTimeout)) { request in
            let words = request.split(separator: " ", maxSplits: 1).map(String.init)
            switch words.first {
            case "update":
                return update()
            case "revert" where words.count == 2:
                return changes.withLock { _ in
                    do {
                        let paths = try union.revert(words[1])
                        fuse.invalidate(paths: paths)
                        return "ok \(paths.count) paths reverted"
                    } catch {
                        return "error: \(error)"
                    }
                }
            case "status":
                return "ok " + union.stack.layers.map(\.label).joined(separator: ", ")
            case "flush":
                union.gate.flushPendingWrites()
                return "ok"
            case "statistics":
                let fetched = RemoteObjects.fetched
                return "ok nodes=\(union.nodeCount) fetched-objects=\(fetched.objects) fetched-bytes=\(fetched.bytes) requests=\(fuse.requests.summary) ring-requests=\(fuse.ringRequests)"
            case "snapshot" where words.count == 2:
                return changes.withLock { _ in VLFSRequests.snapshot(union, state: state, home: home, image: words[1]) }
            case "reset" where words.count == 1 || words[1] == VLFSRequests.keepConfiguration:
                return changes.withLock { _ in
                    let reply = VLFSRequests.reset(union, state: state, home: home, ldf: ldfPath, depth: depth, invalidate: fuse.invalidate)
                    // The configuration the layers' scripts made went with the private layer (unless a
                    // promotion carries it into a configuration layer): make it again.
                    if reply.hasPrefix("ok"), words.count == 1, !noConfigure, (try? configuration.forget()) != nil,
                       let layers = try? Composition.layers(ldf: ldfPath, home: home, depth: depth) {
                        _ = configuration.transition(to: layers)
                    }
                    return reply
                }
            case "configured":
                return noConfigure ? "ok" : configuration.waitForFirst()
            default:
                return "error: unknown request '\(request)'"
            }
        }
        LDFWatcher.watch(ldfPath, home: home) { _ = update() }
        if !noConfigure {
            let layers = stack.layers.filter { $0.kind != .generated }
            configuration.configureAtMount(mountpoint: fuse.mountpoint) {
                changes.withLock { _ in
                    let reply = configuration.transition(to: layers)
                    try? state.recordComposed(union.stack)
                    return reply
                }
            }
        }
        try AtomicFile.write("\(getpid())\n", to: state.pidFile)
        fetching.start()
        fuse.run()
        printError("FUSE requests answered: \(fuse.requests.summary); over io_uring: \(fuse.ringRequests)")
        fetching.saveFirstOpens()
        unlink(state.pidFile)
        unlink(state.controlSocket)
        fuse.close()
    }

    /// Starts `strata mount … --foreground` in a new session and waits until the mount answers.
    private func startDaemon(state: VLFSState) throws {
        try makeDirectories(state.directory, mode: 0o700)
        let arguments = [rootStorage ? "@strata" : "strata", "mount", URL(fileURLWithPath: ldf).standardizedFileURL.path, URL(fileURLWithPath: mountpoint).standardizedFileURL.path,
                         "--name", state.name, "--foreground", "--home", options.strataHome.path, "--control-timeout", String(controlTimeout)]
            + (noPassthrough ? ["--no-passthrough"] : []) + ["--passthrough-minimum-size", String(passthroughMinimumSize)] + (noConfigure ? ["--no-configure"] : []) + (usesIoUring ? ["--io-uring"] : [])
            + (usesWritebackCache ? ["--writeback-cache"] : []) + [kernelOpensFiles ? "--no-open-requests" : "--open-requests", "--fetch", fetch.rawValue]
        try startMountDaemon(arguments: arguments, log: state.log, mountpoint: mountpoint)
    }
}

/// Starts a mount daemon (`strata … --foreground`) in a new session and waits until its mount answers:
/// as long as the daemon lives, up to 10 minutes. Composing a hundred layers takes a slow machine
/// minutes (an emulated one booting from the network: well over 30 s), so after 30 s it says that it
/// is still waiting.
func startMountDaemon(arguments: [String], log: String, mountpoint: String) throws {
    let pid = try Daemon.spawn(arguments: arguments, log: log)
    let started = Date()
    var told = false
    while Date().timeIntervalSince(started) < 600 {
        if isMounted(mountpoint) { return }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw LayerError("the daemon exited before mounting \(mountpoint):\n\(text.split(separator: "\n").suffix(10).joined(separator: "\n"))")
        }
        if !told && Date().timeIntervalSince(started) >= 30 {
            printError("strata: the daemon has not mounted \(mountpoint) after 30 s; still waiting (its log: \(log))")
            told = true
        }
        usleep(50_000)
    }
    throw LayerError("the daemon did not mount \(mountpoint) within 10 minutes; see \(log)")
}

struct Umount: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmount a VLFS and wait for its daemon to finish.")
    @OptionGroup var options: HomeOptions
    @Argument var mountpoint: String

    func run() throws {
        let path = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        guard isMounted(path) else { throw LayerError("\(mountpoint): no VLFS is mounted there") }
        let daemon = vlfsName(mountedAt: path).flatMap { try? VLFSState(home: options.strataHome, name: $0) }?.daemonProcess()
        guard umount2(path, 0) == 0 else { throw SystemError("umount", path) }
        // The daemon removes its pid file and socket as it exits; wait for that, so a caller may reuse the state at once.
        for _ in 0..<200 where isMounted(path) || daemon.map(VLFSState.isRunning) == true { usleep(50_000) }
        if let daemon, VLFSState.isRunning(daemon) {
            // The kernel ends the filesystem only when no mount of it is left anywhere.
            printError("strata umount: \(mountpoint) is unmounted here, but its daemon (pid \(daemon)) still serves after 10 s: "
                + "another mount namespace holds a copy of the mount (see `grep -l \(path) /proc/*/mountinfo`)")
        }
    }

    /// The VLFS name a `strata mount` daemon gave its filesystem (`strata:NAME`).
    private func vlfsName(mountedAt path: String) -> String? {
        MountTable.current().last { $0.mountpoint == path && $0.source.hasPrefix("strata:") }.map { String($0.source.dropFirst(7)) }
    }
}

struct Update: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recompose a mounted VLFS from its LDF, without unmounting.",
        discussion: "Files open on a layer that the update removes keep working until they are closed.")
    @OptionGroup var options: HomeOptions
    @Argument(help: "The VLFS's name.") var name: String

    func run() throws {
        let state = try VLFSState(home: options.strataHome, name: name)
        guard let reply = try ControlChannel.send("update", to: state.controlSocket) else {
            throw LayerError("VLFS '\(name)' has no running daemon; it will use its LDF (\(try state.ldf())) when next mounted")
        }
        guard reply.hasPrefix("ok") else { throw LayerError(ControlChannel.failure(reply)) }
        print(reply.dropFirst(3))
    }
}

/// True when a FUSE filesystem of ours answers at `path`.
func isMounted(_ path: String) -> Bool {
    MountTable.isMounted(URL(fileURLWithPath: path).standardizedFileURL.path)
}
