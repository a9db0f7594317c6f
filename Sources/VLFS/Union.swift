import CLinux
import Foundation
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Who asks for an operation: new files belong to them.
public struct Caller: Sendable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    public static let root = Caller(uid: 0, gid: 0)
}

/// The union namespace of a VLFS, in pure Swift: the private layer (a real directory) over a
/// `LayerStack`. Lookup takes the topmost layer that has a name unless a whiteout hides it there;
/// directories merge. Paths are relative to the root, without a leading slash ("" is the root).
///
/// Concurrency: the stack is swapped whole under a lock and each operation works on the snapshot it
/// took, so readers never see a half-updated stack. The kernel serialises changes within one directory;
/// copy-up is serialised here.
///
/// Lock order (the daemon's, outermost first; nothing takes an earlier one while holding a later one):
/// 1. `gate` (MutationGate): held shared by every change (FUSE changes, revert), exclusively by a
///    snapshot's capture and a reset — never while hashing the private layer (see `Snapshot.Prepared`).
/// 2. the live-update lock of `strata mount`'s serve loop: one update at a time; inside it only leaf
///    locks are taken (it does not pass the gate: a stack swap is atomic by itself).
/// 3. `copyUpLock`: one copy-up at a time; it resolves and writes the private layer while held.
/// 4. leaf locks, each held only for a few dictionary operations and never while taking another:
///    `current`, `linkGroups`, `openFiles`, `InodeTable.state`, `TreeCache`, `DirectoryCache`,
///    `WhiteoutSet.paths`, `PrivateLayer.retiredRoots`, and in the FUSE adapter `listings` and
///    `KernelOpens` (which holds its lock across the passthrough ioctl of an inode's first open).
public final class Union: Sendable {
    public let privateRoot: String
    public let whiteoutDirectory: String
    let privateLayer: PrivateLayer
    /// The stack, and what is known of its directories; both replaced together by a live update. The
    /// epoch counts stacks and changes to the whiteouts of directories: what an inode's path resolved
    /// to in the shared layers holds within one epoch (`InodeTable.SharedResolution`).
    private let current: Mutex<(stack: LayerStack, directories: DirectoryCache, epoch: UInt64)>
    let inodes = InodeTable()
    /// Passed by every change (the FUSE adapter wraps its mutating operations in it).
    public let gate = MutationGate()
    let trees = TreeCache()
    /// What the appliance opens first, for prefetching at the next mount.
    public let firstOpens = FirstOpens()
    let copyUpLock = Mutex(())
    /// Copies whose rename into place is not yet known durable, by private inode number: the first
    /// fsync of one syncs its directory too. POSIX asks that of a new name; to the appliance a copy is
    /// no new name, so its fsync must carry the name. Bounded: past 2¹⁶, one syncfs covers them all.
    let unsyncedCopies = Mutex(Set<UInt64>())
    private let linkGroups = Mutex<[Digest: [UInt32: [String]]]>([:])
    /// Open descriptors by inode, so a file stays stat-able while open after its name is gone
    /// (unlinked, or its layer removed by a live update), as POSIX promises for open files.
    private let openFiles = Mutex<[UInt64: (descriptors: [Int32], attributes: stat, isShared: Bool)]>([:])
    /// Descriptors by node, for a mount whose kernel opens regular files itself (`Union+Descriptors`).
    public let descriptors = InodeDescriptors(capacity: 4096)
    /// Opens of shared files whose blobs are opened at their first read (`open(_:flags:deferringBlob:)`).
    let deferredBlobs = DeferredBlobs()

    public init(stack: LayerStack, privateRoot: String, whiteoutDirectory: String) throws {
        self.privateRoot = privateRoot
        self.whiteoutDirectory = whiteoutDirectory
        current = Mutex((stack, DirectoryCache(), 0))
        var st = stat()
        if lstat(privateRoot, &st) != 0 {
            try makeDirectories(privateRoot, mode: 0o755)
            if let root = stack.layers.last?.root {
                chown(privateRoot, root.uid, root.gid)
                chmod(privateRoot, mode_t(root.mode))
            }
        }
        privateLayer = try PrivateLayer(path: privateRoot, workPath: (privateRoot as NSString).deletingLastPathComponent + "/work")
    }

    public var stack: LayerStack { current.withLock { $0.stack } }

    /// For the daemon, before it serves: see `PrivateLayer.discardUnfinishedCopies`.
    public func discardUnfinishedCopies() throws { try privateLayer.discardUnfinishedCopies() }

    /// Whiteouts of directories changed: directory contributions, and what paths beneath them
    /// resolved to, may be wrong. The epoch moves on after the cache is emptied, so that a resolution
    /// kept under the new epoch saw the new whiteouts.
    func forgetDirectories() {
        current.withLock { $0.directories }.invalidate()
        current.withLock { $0.epoch &+= 1 }
    }

    /// Swaps in a new stack atomically and returns the paths whose contents or visibility may differ.
    public func replaceStack(_ new: LayerStack) throws -> [String] {
        deferredBlobs.openAll()
        let old = current.withLock { current -> LayerStack in
            defer { current = (new, DirectoryCache(), current.epoch &+ 1) }
            return current.stack
        }
        let changed = try StackDiff.changedPaths(from: old, to: new)
        keepReadBlobs(changed, from: old)
        // Blobs open for reading may no longer be what their nodes show.
        descriptors.dropAll(sharedOnly: true)
        return changed
    }

    static func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }


    // MARK: Resolution

    /// What a path is in the union: its topmost provider, and for a directory the shared layers whose
    /// directories merge beneath it.
    struct Resolved {
        enum Top {
            case privateFile(stat)
            case shared(layer: Int, entry: TreeEntry)
        }

        var top: Top
        /// (layer index, directory tree digest), top to bottom.
        var contributors: [(layer: Int, tree: Digest)]
        let stack: LayerStack

        var isDirectory: Bool {
            switch top {
            case .privateFile(let st): (st.st_mode & S_IFMT) == S_IFDIR
            case .shared(_, let entry): entry.kind == .directory
            }
        }

        var isPrivate: Bool {
            if case .privateFile = top { return true }
            return false
        }

        /// Other names may lead to the same file.
        var isHardLinked: Bool {
            switch top {
            case .privateFile(let st): (st.st_mode & S_IFMT) != S_IFDIR && st.st_nlink > 1
            case .shared(_, let entry): entry.linkGroup != 0
            }
        }

        /// What to keep of this resolution for its inode: a shared file's layer and entry (a directory's
        /// contributors are not kept).
        func sharedFile(epoch: UInt64) -> InodeTable.SharedResolution? {
            guard case .shared(let layer, let entry) = top, entry.kind != .directory else { return nil }
            return InodeTable.SharedResolution(layer: layer, entry: entry, epoch: epoch)
        }
    }

    func resolve(_ path: String, in stack: LayerStack, directories: DirectoryCache? = nil) throws(FSError) -> Resolved {
        let privateStatus = try privateLayer.status(path)
        // A private file hides whatever the shared layers have at its path: only a directory merges with
        // theirs, so only then are they looked at (most requests on private files skip them).
        if let st = privateStatus, (st.st_mode & S_IFMT) != S_IFDIR { return Resolved(top: .privateFile(st), contributors: [], stack: stack) }
        var contributors = rootContributors(stack)
        var top: (layer: Int, entry: TreeEntry)?
        if !path.isEmpty {
            let (parent, name) = Beneath.split(path)
            (top, contributors) = try step(from: try sharedDirectory(parent, in: stack, directories: directories), name: name, path: path, in: stack)
        }
        if let st = privateStatus { return Resolved(top: .privateFile(st), contributors: contributors, stack: stack) }
        guard let top else { throw FSError.notFound }
        return Resolved(top: .shared(layer: top.layer, entry: top.entry), contributors: top.entry.kind == .directory ? contributors : [], stack: stack)
    }

    func resolve(_ path: String) throws(FSError) -> Resolved {
        let (stack, directories, _) = current.withLock { $0 }
        return try resolve(path, in: stack, directories: directories)
    }

    /// What an inode's path is now: what an earlier resolution of it found in a shared layer while
    /// that holds, without looking at any layer (OPEN and GETATTR of a file LOOKUP resolved), or else
    /// resolved afresh and kept.
    func resolve(inode: UInt64) throws(FSError) -> (path: String, resolved: Resolved) {
        let (stack, directories, epoch) = current.withLock { $0 }
        guard let (path, known, stamp) = inodes.path(of: inode, epoch: epoch) else { throw FSError.notFound }
        if let known { return (path, Resolved(top: .shared(layer: known.layer, entry: known.entry), contributors: [], stack: stack)) }
        let resolved = try resolve(path, in: stack, directories: directories)
        if let kept = resolved.sharedFile(epoch: epoch) { inodes.remember(kept, for: inode, at: path, stamp: stamp) }
        return (path, resolved)
    }

    /// An inode's path, unless what it resolved to in a shared layer is kept (then its path is not private).
    private func pathWithoutSharedResolution(_ inode: UInt64) -> String? {
        let epoch = current.withLock { $0.epoch }
        guard let (path, known, _) = inodes.path(of: inode, epoch: epoch), known == nil else { return nil }
        return path
    }

    /// What a path is, for building an image of the union.
    public struct View: Sendable {
        public var isDirectory: Bool
        public var isPrivate: Bool
        /// The shared entry shown, when the path is not private.
        public var sharedEntry: TreeEntry?
        /// A directory's own metadata as a tree entry (digest not set for a private directory).
        public var directoryEntry: TreeEntry
        /// A directory one shared layer alone provides, with nothing of it whited out: its stored tree
        /// is exactly what the union shows.
        public var reusableSharedDirectory: TreeEntry?
    }

    public func view(_ path: String) throws -> View {
        let resolved = try resolve(path)
        switch resolved.top {
        case .privateFile:
            let entry = try privateLayer.treeEntry(path)
            return View(isDirectory: resolved.isDirectory, isPrivate: true, sharedEntry: nil, directoryEntry: entry, reusableSharedDirectory: nil)
        case .shared(let layer, let entry):
            var reusable: TreeEntry?
            // A configuration layer's directory may hold deletions, which its stored tree shows.
            if entry.kind == .directory, resolved.contributors.count == 1, resolved.stack.layers[layer].kind == .software {
                let prefix = path + "/"
                if !resolved.stack.whiteouts[layer].all.contains(where: { path.isEmpty || $0 == path || $0.hasPrefix(prefix) }) { reusable = entry }
            }
            return View(isDirectory: entry.kind == .directory, isPrivate: false, sharedEntry: entry, directoryEntry: entry, reusableSharedDirectory: reusable)
        }
    }

    /// The shared entry a whiteout at exactly `path` hides (what a private file that replaced it by
    /// rename, or a deletion, took the place of), from the topmost layer that has one.
    public func hiddenEntry(at path: String) -> (layer: SharedLayer, entry: TreeEntry)? {
        let (stack, directories, _) = current.withLock { $0 }
        let (parentPath, name) = Beneath.split(path)
        guard !path.isEmpty, let parent = try? sharedDirectory(parentPath, in: stack, directories: directories) else { return nil }
        for (layer, directory) in parent where stack.whiteouts[layer].contains(path) {
            if let entry = try? trees.tree(directory, layer: layer, in: stack).entry(named: name) { return (stack.layers[layer], entry) }
        }
        return nil
    }

    /// The shared layer that provides `path` beneath the private layer, and its entry, if any.
    public func sharedEntry(at path: String) -> (layer: SharedLayer, entry: TreeEntry)? {
        let (stack, directories, _) = current.withLock { $0 }
        guard !path.isEmpty, let parent = try? sharedDirectory(Beneath.split(path).parent, in: stack, directories: directories),
              let (top, _) = try? step(from: parent, name: Beneath.split(path).name, path: path, in: stack), let top else { return nil }
        return (stack.layers[top.layer], top.entry)
    }

    private func rootContributors(_ stack: LayerStack) -> [DirectoryCache.Contributor] {
        stack.layers.indices.map { (layer: $0, tree: stack.layers[$0].root.digest!) }
    }

    /// The shared layers whose directories merge at `path`, top to bottom: computed from the parent's,
    /// one level at a time, and remembered (a directory's contributors change only with whiteouts or
    /// the stack, and both reset the cache).
    func sharedDirectory(_ path: String, in stack: LayerStack, directories: DirectoryCache?) throws(FSError) -> [DirectoryCache.Contributor] {
        if path.isEmpty { return rootContributors(stack) }
        let version = directories?.version ?? 0
        if let known = directories?.contributors(path) { return known }
        let (parent, name) = Beneath.split(path)
        let (top, contributors) = try step(from: try sharedDirectory(parent, in: stack, directories: directories), name: name, path: path, in: stack)
        let result = top?.entry.kind == .directory ? contributors : []
        directories?.remember(path, result, version: version)
        return result
    }

    /// One level of lookup: the topmost entry named `name` among the parent's contributors, and the
    /// layers whose directories merge under it. A non-directory hides everything below it.
    private func step(from parent: [DirectoryCache.Contributor], name: String, path: String, in stack: LayerStack) throws(FSError)
        -> (top: (layer: Int, entry: TreeEntry)?, contributors: [DirectoryCache.Contributor])
    {
        var next: [DirectoryCache.Contributor] = []
        var top: (layer: Int, entry: TreeEntry)?
        for (layer, directory) in parent {
            if stack.whiteouts[layer].contains(path) { continue }
            guard let entry = try trees.tree(directory, layer: layer, in: stack).entry(named: name) else { continue }
            if stack.layers[layer].deletes(entry) { break }
            if top == nil { top = (layer, entry) }
            guard entry.kind == .directory, top!.entry.kind == .directory else { break }
            next.append((layer, entry.digest!))
            if stack.layers[layer].isOpaque(entry) { break }
        }
        return (top, next)
    }

    func identity(of resolved: Resolved) -> InodeTable.Identity? {
        switch resolved.top {
        case .privateFile(let st):
            return (st.st_mode & S_IFMT) == S_IFDIR ? nil : .privateInode(UInt64(st.st_ino))
        case .shared(let layer, let entry):
            return entry.linkGroup == 0 ? nil : .sharedLink(layer: resolved.stack.layers[layer].whiteoutKey, group: entry.linkGroup)
        }
    }

    func attributes(of resolved: Resolved, inode: UInt64) throws(FSError) -> stat {
        switch resolved.top {
        case .privateFile(var st):
            st.st_ino = UInt(InodeTable.number(of: inode))
            return st
        case .shared(let layer, let entry):
            var st = stat()
            st.st_ino = UInt(InodeTable.number(of: inode))
            st.st_mode = entry.statMode
            st.st_uid = entry.uid
            st.st_gid = entry.gid
            st.st_size = Int(entry.kind == .symlink ? UInt64(entry.target?.utf8.count ?? 0) : entry.size)
            st.st_blocks = Int((entry.size + 511) / 512)
            st.st_blksize = 4096
            st.st_rdev = UInt(entry.device)
            st.st_mtim = entry.mtime.timespec
            st.st_ctim = entry.mtime.timespec
            st.st_atim = entry.mtime.timespec
            st.st_nlink = entry.kind == .directory ? 2 : UInt(entry.linkGroup == 0 ? 1 : try linkedPaths(of: entry.linkGroup, layer: layer, in: resolved.stack).count)
            return st
        }
    }

    /// The names under which a hard-link group of a shared layer shows now: its members that no whiteout,
    /// private file or other layer hides. The layer's groups are found once, by walking it.
    func linkedPaths(of group: UInt32, layer: Int, in stack: LayerStack) throws(FSError) -> [String] {
        let shared = stack.layers[layer]
        var groups = linkGroups.withLock { $0[shared.digest] }
        if groups == nil {
            var found: [UInt32: [String]] = [:]
            do {
                try shared.store.walk(shared.root.digest!) { path, entry in
                    if entry.linkGroup != 0 { found[entry.linkGroup, default: []].append(path) }
                }
            } catch { throw FSError(EIO) }
            linkGroups.withLock { $0[shared.digest] = found }
            groups = found
        }
        return (groups?[group] ?? []).filter { path in
            guard case .shared(let top, let entry)? = (try? resolve(path, in: stack))?.top else { return false }
            return top == layer && entry.linkGroup == group
        }
    }

    // MARK: Reading

    public struct Entry: Sendable {
        public var inode: UInt64
        public var attributes: stat

        public init(inode: UInt64, attributes: stat) {
            self.inode = inode
            self.attributes = attributes
        }
    }

    /// Looks a name up, counting one kernel reference on success unless told not to (readdirplus
    /// counts only the entries that fit its buffer, with `adopt`).
    public func lookup(parent: UInt64, name: String, countLookup: Bool = true) throws(FSError) -> Entry {
        let (stack, directories, epoch) = current.withLock { $0 }
        guard let (parentPath, _, stamp) = inodes.path(of: parent, epoch: epoch) else { throw FSError.notFound }
        let path = Union.join(parentPath, name)
        let resolved = try resolve(path, in: stack, directories: directories)
        let inode = inodes.inode(for: path, identity: identity(of: resolved), countLookup: countLookup,
                                 resolution: resolved.sharedFile(epoch: epoch).map { ($0, stamp) })
        return Entry(inode: inode, attributes: try attributes(of: resolved, inode: inode))
    }

    public func forget(_ inode: UInt64, count: UInt64) {
        if inodes.forget(inode, count: count) { descriptors.drop(inode, evenPinned: true) }
    }

    /// Gives the file a new node id (same inode number): the kernel's next lookup of its names makes a
    /// new inode, while files open on the old one keep it. Returns nil if the old id no longer names it.
    @discardableResult
    public func renew(_ inode: UInt64) -> UInt64? { inodes.renew(inode) }

    /// Renews (see `renew`) the nodes at these paths that are not directories, whose contents changed
    /// behind the kernel: with writeback caching, the kernel never takes a size from the daemon for a
    /// regular file it has cached, so only a new inode shows the new one.
    public func renewFiles(at paths: [String]) {
        for path in paths {
            guard let node = inodes.inode(at: path) else { continue }
            if let attributes = try? attributes(of: node), attributes.st_mode & S_IFMT == S_IFDIR { continue }
            renew(node)
        }
    }

    /// The `st_ino` of a node id.
    public static func inodeNumber(ofNode node: UInt64) -> UInt64 { InodeTable.number(of: node) }

    /// Counts the kernel's reference to an entry that readdirplus handed it from the listing of `directory`.
    public func adopt(_ entry: DirectoryEntry, in directory: UInt64) throws(FSError) {
        inodes.adopt(entry.inode, path: Union.join(try path(of: directory), entry.name), identity: entry.identity)
    }

    /// How many nodes the daemon tracks.
    public var nodeCount: Int { inodes.count }

    /// The kernel's (parent inode, name) and inode for each path it may have cached, to invalidate.
    public func cachedEntries(for paths: [String]) -> (entries: [(parent: UInt64, name: String)], inodes: [UInt64]) {
        var entries: [(UInt64, String)] = []
        var nodes: [UInt64] = []
        for path in paths {
            let (parent, name) = Beneath.split(path)
            if let parentInode = inodes.inode(at: parent) {
                entries.append((parentInode, name))
                nodes.append(parentInode)
            }
            if let inode = inodes.inode(at: path) { nodes.append(inode) }
        }
        return (entries, Array(Set(nodes)))
    }

    public func path(of inode: UInt64) throws(FSError) -> String {
        guard let path = inodes.path(of: inode) else { throw FSError.notFound }
        return path
    }

    public func attributes(of inode: UInt64) throws(FSError) -> stat {
        if let pinned = descriptors.pinnedAttributes(of: inode) { return pinned }
        do {
            return try attributes(of: try resolve(inode: inode).resolved, inode: inode)
        } catch let error where error == .notFound {
            guard let open = openFiles.withLock({ $0[inode] }) else { throw error }
            var st = open.attributes
            // A private file's descriptor tells its current size and times; a shared blob never changes.
            if !open.isShared, let fd = open.descriptors.first, fstat(fd, &st) != 0 { throw error }
            st.st_ino = UInt(InodeTable.number(of: inode))
            st.st_nlink = 0
            return st
        }
    }

    func registerOpen(_ inode: UInt64, _ file: OpenFile, attributes: stat) {
        openFiles.withLock { files in
            files[inode, default: ([], attributes, file.isShared)].descriptors.append(file.descriptor)
        }
    }

    /// Closes a descriptor returned by `open` or `create`.
    public func release(_ inode: UInt64, descriptor: Int32) {
        unregisterOpen(inode, descriptor: descriptor)
        close(descriptor)
    }

    /// The blob of a deferred open (see `OpenFile.deferred`), opened at the first call.
    public func deferredBlob(_ id: UInt64) throws(FSError) -> Int32 { try deferredBlobs.descriptor(id) }

    /// Ends a deferred open, closing its blob if it was read.
    public func releaseDeferred(_ inode: UInt64, _ id: UInt64) {
        unregisterOpen(inode, descriptor: -1)
        deferredBlobs.remove(id)
    }

    func unregisterOpen(_ inode: UInt64, descriptor: Int32) {
        openFiles.withLock { files in
            // One: deferred opens all count as -1.
            if let index = files[inode]?.descriptors.firstIndex(of: descriptor) { files[inode]?.descriptors.remove(at: index) }
            if files[inode]?.descriptors.isEmpty == true { files[inode] = nil }
        }
    }

    public func readLink(_ inode: UInt64) throws(FSError) -> String {
        let (path, resolved) = try resolve(inode: inode)
        switch resolved.top {
        case .shared(_, let entry):
            guard entry.kind == .symlink else { throw FSError.invalid }
            return entry.target ?? ""
        case .privateFile:
            return try privateLayer.readLink(path)
        }
    }

    public struct DirectoryEntry: Sendable {
        public var name: String
        public var inode: UInt64
        /// `S_IFMT` bits.
        public var type: UInt32
        /// Filled in when asked for (readdirplus), so the kernel need not look each name up.
        public var attributes: stat?
        let identity: InodeTable.Identity?
    }

    /// The merged listing of a directory: private names first, then each shared layer's names not
    /// already seen and not whited out there (a configuration layer's deletion is a name seen, not shown).
    public func list(_ inode: UInt64, withAttributes: Bool = false) throws(FSError) -> [DirectoryEntry] {
        try list(path: try path(of: inode), withAttributes: withAttributes)
    }

    /// The listing of a directory by path; the numbers it shows create no nodes (see `InodeTable.number`).
    public func list(path: String, withAttributes: Bool = false) throws(FSError) -> [DirectoryEntry] {
        let resolved = try resolve(path)
        guard resolved.isDirectory else { throw FSError.notDirectory }
        var seen = Set<String>()
        var entries: [DirectoryEntry] = []
        if resolved.isPrivate {
            try privateLayer.list(path, withStatus: withAttributes) { name, type, privateInode, status in
                let identity: InodeTable.Identity? = type == UInt8(DT_DIR) ? nil : .privateInode(privateInode)
                let child = inodes.number(for: Union.join(path, name), identity: identity)
                seen.insert(name)
                var attributes = status
                attributes?.st_ino = UInt(InodeTable.number(of: child))
                entries.append(DirectoryEntry(name: name, inode: child, type: UInt32(type) << 12, attributes: attributes, identity: identity))
            }
        }
        for (layer, directory) in resolved.contributors {
            let whiteouts = resolved.stack.whiteouts[layer]
            for entry in try trees.tree(directory, layer: layer, in: resolved.stack).entries where !seen.contains(entry.name) {
                let childPath = Union.join(path, entry.name)
                if whiteouts.contains(childPath) { continue }
                seen.insert(entry.name)
                if resolved.stack.layers[layer].deletes(entry) { continue }
                let identity: InodeTable.Identity? = entry.linkGroup == 0 ? nil : .sharedLink(layer: resolved.stack.layers[layer].whiteoutKey, group: entry.linkGroup)
                let child = inodes.number(for: childPath, identity: identity)
                let attributes = withAttributes
                    ? try self.attributes(of: Resolved(top: .shared(layer: layer, entry: entry), contributors: [], stack: resolved.stack), inode: child) : nil
                entries.append(DirectoryEntry(name: entry.name, inode: child, type: entry.kind.fileTypeBits, attributes: attributes, identity: identity))
            }
        }
        return entries
    }

    /// An open file: a private file, or a shared file's blob in the store (which never changes, so the
    /// kernel may keep its pages across opens, or read the blob itself).
    public struct OpenFile: Sendable {
        public var descriptor: Int32
        /// The blob's digest, for a shared file (opened read-only).
        public var blob: Digest?
        /// The blob's size, for a shared file.
        public var size: UInt64 = 0
        /// For a shared file whose blob is opened at its first read: the open's id for `deferredBlob`
        /// and `releaseDeferred` (`descriptor` is then -1).
        public var deferred: UInt64?
        public var isShared: Bool { blob != nil }
    }

    /// Whether an open with these flags changes the file (and so copies a shared file up).
    public static func opensForWriting(_ flags: Int32) -> Bool {
        (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0
    }

    /// Opens a file; one opened for writing (so private) undergoes `drop` when given (O_TRUNC). A shared
    /// file of a local layer opened for reading, of a size that `deferringBlob` takes, gets its blob
    /// only at its first read (`deferredBlob`).
    public func open(_ inode: UInt64, flags: Int32, droppingPrivileges drop: PrivilegeDrop? = nil,
                     deferringBlob: (_ size: UInt64) -> Bool = { _ in false }) throws(FSError) -> OpenFile {
        let writing = Union.opensForWriting(flags)
        // A revert may drop the private copy between resolving and opening it; the shared original
        // then shows, so resolve again (a second loss in a row is reported). A copy made for this open
        // is opened as it is placed, so a revert cannot come between.
        var attempts = 0
        while true {
            attempts += 1
            let (path, resolved) = try resolve(inode: inode)
            if writing && !resolved.isPrivate {
                if let copied = try copyUp(path, withData: (flags & O_TRUNC) == 0, opening: flags, resolved: resolved) {
                    try Union.closing(copied) { () throws(FSError) in try drop?.apply(toOpenFile: copied) }
                    var attributes = stat()
                    fstat(copied, &attributes)
                    attributes.st_ino = UInt(InodeTable.number(of: inode))
                    let file = OpenFile(descriptor: copied, blob: nil)
                    registerOpen(inode, file, attributes: attributes)
                    return file
                }
                continue  // another change copied it up meanwhile
            }
            let file: OpenFile
            switch resolved.top {
            case .privateFile:
                let fd: Int32
                do {
                    fd = try privateLayer.open(path, flags: flags)
                } catch let error where error == .notFound && attempts < 3 {
                    continue
                }
                if writing { try Union.closing(fd) { () throws(FSError) in try drop?.apply(toOpenFile: fd) } }
                file = OpenFile(descriptor: fd, blob: nil)
            case .shared(let layer, let entry):
                guard entry.kind == .regular else { throw FSError.invalid }
                let shared = resolved.stack.layers[layer]
                // A lazily fetched layer fetches at the open, which fails alone if the fetch does.
                if shared.remote == nil, deferringBlob(entry.size) {
                    file = OpenFile(descriptor: -1, blob: entry.digest, size: entry.size, deferred: deferredBlobs.add(shared, entry))
                } else {
                    file = OpenFile(descriptor: try shared.openBlob(entry), blob: entry.digest, size: entry.size)
                }
                firstOpens.note(path)
            }
            registerOpen(inode, file, attributes: try attributes(of: resolved, inode: inode))
            return file
        }
    }

    /// Runs `body` on a descriptor just opened, closing it if `body` fails.
    private static func closing(_ descriptor: Int32, _ body: () throws(FSError) -> Void) throws(FSError) {
        do { try body() } catch {
            close(descriptor)
            throw error
        }
    }

    /// After the kernel's fsync of an open file succeeded on `descriptor`: a copy's name becomes durable too.
    public func fileSynced(_ inode: UInt64, descriptor: Int32) throws(FSError) {
        var st = stat()
        guard fstat(descriptor, &st) == 0, unsyncedCopies.withLock({ $0.remove(UInt64(st.st_ino)) }) != nil,
              let path = inodes.path(of: inode) else { return }
        try privateLayer.syncDirectory(Beneath.split(path).parent)
    }

    /// Makes a directory's entries durable (shared directories never change).
    public func syncDirectory(_ inode: UInt64) throws(FSError) {
        let path = try path(of: inode)
        if try privateLayer.status(path) != nil { try privateLayer.syncDirectory(path) }
    }

    public func statistics() throws(FSError) -> statvfs {
        try privateLayer.statistics()
    }

    // MARK: Extended attributes

    static let layerAttribute = "user.strata.layer"
    static let digestAttribute = "user.strata.digest"

    public func extendedAttribute(_ inode: UInt64, name: String) throws(FSError) -> [UInt8] {
        // A private file's own attributes (the kernel asks for security.capability before a file's first
        // write) are read with one lookup of its path, not a resolution and then a second lookup.
        if name != Union.layerAttribute, name != Union.digestAttribute, let path = pathWithoutSharedResolution(inode),
           let value = try privateLayer.extendedAttributeIfPresent(path, name: name) {
            return value
        }
        let (path, resolved) = try resolve(inode: inode)
        switch (name, resolved.top) {
        case (Union.layerAttribute, .privateFile):
            return Array("private".utf8)
        case (Union.layerAttribute, .shared(let layer, _)):
            return Array(resolved.stack.layers[layer].label.utf8)
        case (Union.digestAttribute, .shared(_, let entry)):
            guard let digest = entry.digest, entry.kind == .regular else { throw FSError.noAttribute }
            return Array(digest.description.utf8)
        case (Union.digestAttribute, .privateFile(let st)):
            guard (st.st_mode & S_IFMT) == S_IFREG else { throw FSError.noAttribute }
            return Array(try hashPrivateFile(path).description.utf8)
        case (_, .privateFile):
            return try privateLayer.extendedAttribute(path, name: name)
        case (_, .shared(_, let entry)):
            guard let xattr = entry.xattrs.first(where: { $0.name == name }) else { throw FSError.noAttribute }
            return xattr.value
        }
    }

    public func extendedAttributeNames(_ inode: UInt64) throws(FSError) -> [String] {
        let (path, resolved) = try resolve(inode: inode)
        switch resolved.top {
        case .shared(_, let entry):
            return entry.xattrs.map(\.name)
        case .privateFile:
            return try privateLayer.extendedAttributeNames(path)
        }
    }

    private func hashPrivateFile(_ path: String) throws(FSError) -> Digest {
        let fd = try privateLayer.open(path, flags: O_RDONLY)
        defer { close(fd) }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try check { read(fd, buffer.baseAddress, buffer.count) }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        return hasher.finalize()
    }
}
