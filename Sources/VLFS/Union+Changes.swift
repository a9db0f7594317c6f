import CLinux
import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Changes to the union: they all land in the private layer, or as whiteouts in the whiteout layer of
/// each shared layer that provides the name.
extension Union {
    // MARK: Creating

    /// Creates a file and opens it.
    public func create(parent: UInt64, name: String, mode: UInt32, flags: Int32, caller: Caller) throws(FSError) -> (Entry, OpenFile) {
        let path = try prepareNewName(parent: parent, name: name)
        let (fd, st) = try privateLayer.create(path, flags: flags, mode: mode, owner: caller)
        do {
            // The file just made is what its path resolves to: its descriptor told its status.
            let entry = try newEntry(path, resolved: Resolved(top: .privateFile(st), contributors: [], stack: stack))
            let file = OpenFile(descriptor: fd, blob: nil)
            registerOpen(entry.inode, file, attributes: entry.attributes)
            return (entry, file)
        } catch {
            close(fd)
            throw error
        }
    }

    public func makeDirectory(parent: UInt64, name: String, mode: UInt32, caller: Caller) throws(FSError) -> Entry {
        let path = try prepareNewName(parent: parent, name: name)
        try privateLayer.makeDirectory(path, mode: mode, owner: caller)
        return try newEntry(path)
    }

    public func makeNode(parent: UInt64, name: String, mode: UInt32, device: UInt64, caller: Caller) throws(FSError) -> Entry {
        let path = try prepareNewName(parent: parent, name: name)
        try privateLayer.makeNode(path, mode: mode, device: device, owner: caller)
        return try newEntry(path)
    }

    public func makeSymlink(parent: UInt64, name: String, target: String, caller: Caller) throws(FSError) -> Entry {
        let path = try prepareNewName(parent: parent, name: name)
        try privateLayer.makeSymlink(path, target: target, owner: caller)
        return try newEntry(path)
    }

    /// A hard link: both names end up in the private layer (links cannot span layers).
    public func link(_ inode: UInt64, parent: UInt64, name: String) throws(FSError) -> Entry {
        let source = try path(of: inode)
        guard !(try resolve(source)).isDirectory else { throw FSError.notPermitted }
        try copyUp(source, withData: true)
        let path = try prepareNewName(parent: parent, name: name)
        try privateLayer.link(source, to: path)
        return try newEntry(path)
    }

    /// Checks that no shared layer shows the name and that its private parent exists. Whether the
    /// private layer has it is the creation's own check (O_EXCL, mkdirat…: EEXIST), one call fewer.
    private func prepareNewName(parent: UInt64, name: String) throws(FSError) -> String {
        let parentPath = try path(of: parent)
        let path = Union.join(parentPath, name)
        if sharedEntry(at: path) != nil { throw FSError.exists }
        try ensurePrivateDirectory(parentPath)
        return path
    }

    private func newEntry(_ path: String, resolved known: Resolved? = nil) throws(FSError) -> Entry {
        inodes.unlinked(path)
        let resolved: Resolved
        if let known { resolved = known } else { resolved = try resolve(path) }
        let inode = inodes.inode(for: path, identity: identity(of: resolved), countLookup: true)
        return Entry(inode: inode, attributes: try attributes(of: resolved, inode: inode))
    }

    // MARK: Removing

    public func unlink(parent: UInt64, name: String) throws(FSError) {
        let path = Union.join(try path(of: parent), name)
        let resolved = try resolve(path)
        guard !resolved.isDirectory else { throw FSError.isDirectory }
        // Whiteout first: while a private file is there it shows whatever the whiteouts say, so a crash
        // between the two leaves the name as it was, never the shared original in place of the copy.
        keepUnlinked(path, resolved)
        try whiteOut(path, in: resolved.stack)
        if resolved.isPrivate { try privateLayer.unlink(path) }
        inodes.unlinked(path, hasOtherLinks: resolved.isHardLinked)
    }

    public func removeDirectory(parent: UInt64, name: String) throws(FSError) {
        let path = Union.join(try path(of: parent), name)
        let resolved = try resolve(path)
        guard resolved.isDirectory else { throw FSError.notDirectory }
        guard try list(path: path).isEmpty else { throw FSError.notEmpty }
        try whiteOut(path, in: resolved.stack)
        // Empty in the union, so empty in the private layer too.
        if resolved.isPrivate { try privateLayer.removeDirectory(path) }
        inodes.unlinked(path)
    }

    /// Records a whiteout in every shared layer that provides `path` (visibly, through its parent).
    func whiteOut(_ path: String, in stack: LayerStack) throws(FSError) {
        defer { inodes.resolutionsChanged(at: CollectionOfOne(path)) }
        let (parent, name) = Beneath.split(path)
        // The shared directories that merge at the parent (the private layer has no say in which).
        guard let contributors = try? sharedDirectory(parent, in: stack, directories: nil) else { return }
        for (layer, directory) in contributors {
            guard let entry = try trees.tree(directory, layer: layer, in: stack).entry(named: name) else { continue }
            // What a configuration layer deletes is deleted below it already.
            if stack.layers[layer].deletes(entry) { break }
            // Only a directory's whiteout changes what directories are made of (unlinking files stays cheap).
            let isDirectory = entry.kind == .directory
            do { try stack.whiteouts[layer].add(path, isDirectory: isDirectory) } catch { throw FSError(EIO) }
            if isDirectory { forgetDirectories() }
        }
    }

    // MARK: Renaming

    public struct RenameFlags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let noReplace = RenameFlags(rawValue: 1)
        public static let exchange = RenameFlags(rawValue: 2)
    }

    /// Renames anything, including directories that exist in shared layers (no EXDEV): the source is
    /// copied up whole, renamed within the private layer, and whited out where shared layers had it.
    public func rename(parent: UInt64, name: String, newParent: UInt64, newName: String, flags: RenameFlags) throws(FSError) {
        let from = Union.join(try path(of: parent), name)
        let to = Union.join(try path(of: newParent), newName)
        let source = try resolve(from)
        let target = try? resolve(to)
        if from == to { return }
        if to.hasPrefix(from + "/") { throw FSError.invalid }
        if flags.contains(.exchange) {
            guard let target else { throw FSError.notFound }
            try copyUpTree(from)
            try copyUpTree(to)
            try whiteOut(from, in: source.stack)
            try whiteOut(to, in: target.stack)
            try privateLayer.rename(from, to: to, flags: 2)  // RENAME_EXCHANGE
            inodes.exchanged(from, to)
            return
        }
        if let target {
            if flags.contains(.noReplace) { throw FSError.exists }
            if target.isDirectory {
                guard source.isDirectory else { throw FSError.isDirectory }
                guard try list(path: to).isEmpty else { throw FSError.notEmpty }
            } else if source.isDirectory {
                throw FSError.notDirectory
            }
        }
        try copyUpTree(from)
        try ensurePrivateDirectory(Beneath.split(to).parent)
        // Whiteouts first (see unlink): a crash before the rename leaves both names as they were.
        try whiteOut(from, in: source.stack)
        try whiteOut(to, in: source.stack)
        if let target { keepUnlinked(to, target) }
        // A directory it replaces is empty (checked above), which rename(2) replaces by itself.
        try privateLayer.rename(from, to: to)
        inodes.unlinked(to, hasOtherLinks: target?.isHardLinked ?? false)
        inodes.renamed(from, to: to, isDirectory: source.isDirectory)
    }

    // MARK: Attributes

    public struct AttributeChanges: Sendable {
        public var mode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
        public var size: Int?
        /// nil leaves a time alone; `.now` uses the current time.
        public var accessTime: TimeChange?
        public var modificationTime: TimeChange?

        public enum TimeChange: Sendable {
            case now
            case at(timespec)
        }

        public init() {}
    }

    /// Changes attributes; `drop` follows a truncation or chown the kernel asks it for.
    public func setAttributes(_ inode: UInt64, _ changes: AttributeChanges, openFile: Int32?, droppingPrivileges drop: PrivilegeDrop? = nil) throws(FSError) -> stat {
        let path = try path(of: inode)
        try copyUp(path, withData: changes.size != 0)
        if let mode = changes.mode { try privateLayer.setMode(path, mode) }
        if changes.uid != nil || changes.gid != nil {
            try privateLayer.setOwner(path, uid: changes.uid ?? UInt32.max, gid: changes.gid ?? UInt32.max)
        }
        if let size = changes.size {
            if let openFile { try check { ftruncate(openFile, off_t(size)) } } else { try privateLayer.truncate(path, size: size) }
        }
        if let drop, let st = try privateLayer.status(path), let mode = drop.mode(after: st) { try privateLayer.setMode(path, UInt32(mode)) }
        if changes.accessTime != nil || changes.modificationTime != nil {
            func spec(_ change: AttributeChanges.TimeChange?) -> timespec {
                switch change {
                case nil: timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2)  // UTIME_OMIT
                case .now: timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)  // UTIME_NOW
                case .at(let time): time
                }
            }
            try privateLayer.setTimes(path, access: spec(changes.accessTime), modification: spec(changes.modificationTime))
        }
        return try attributes(of: inode)
    }

    public func setExtendedAttribute(_ inode: UInt64, name: String, value: [UInt8], flags: Int32) throws(FSError) {
        guard !name.hasPrefix("user.strata.") else { throw FSError.notPermitted }
        let path = try path(of: inode)
        try copyUp(path, withData: true)
        try privateLayer.setExtendedAttribute(path, name: name, value: value, flags: flags)
    }

    public func removeExtendedAttribute(_ inode: UInt64, name: String) throws(FSError) {
        guard !name.hasPrefix("user.strata.") else { throw FSError.notPermitted }
        let path = try path(of: inode)
        try copyUp(path, withData: true)
        try privateLayer.removeExtendedAttribute(path, name: name)
    }

    // MARK: Copy-up

    /// Makes `path` private, keeping type, mode, owner, times and xattrs; a regular file's bytes are
    /// copied from its blob in the kernel (`copy_file_range`) unless `withData` is false (truncation).
    /// The copy enters the private layer whole and durable (`PrivateLayer.place`), so a crash never
    /// leaves half a file hiding an intact original.
    /// A hard link stays one file: its other visible names come up with it, linked to the copy (the
    /// kernel shares one inode between them, so it could not tell them apart afterwards anyway).
    /// With `opening` flags, returns the copy opened with them (nil when the path was private already).
    /// `known` is what the caller has just resolved `path` to, if it has (checked again under the lock).
    @discardableResult
    func copyUp(_ path: String, withData: Bool, opening flags: Int32? = nil, resolved known: Resolved? = nil) throws(FSError) -> Int32? {
        let resolved: Resolved
        if let known { resolved = known } else { resolved = try resolve(path) }
        guard case .shared(let layer, let entry) = resolved.top else { return nil }
        let links = entry.linkGroup == 0 ? [] : try linkedPaths(of: entry.linkGroup, layer: layer, in: resolved.stack).filter { $0 != path }
        for name in [path] + links { try ensurePrivateDirectory(Beneath.split(name).parent) }
        // Opened before the lock: a lazily mounted layer may fetch the blob, and other copies need not wait for that.
        let contents = entry.kind == .regular && withData ? try resolved.stack.layers[layer].openBlob(entry) : nil
        defer { if let contents { close(contents) } }
        return try copyUpLock.withLock { _ throws(FSError) -> Int32? in
            guard !(try resolve(path)).isPrivate else { return nil }
            defer { inodes.resolutionsChanged(at: [path] + links) }
            let copy = try privateLayer.place(entry, contents: contents, at: path, links: links, opening: flags)
            if entry.kind != .directory, let inode = inodes.inode(at: path) {
                inodes.alias(.privateInode(UInt64(copy.status.st_ino)), to: inode)
                descriptors.drop(inode)
            }
            if entry.kind == .regular { try noteUnsyncedCopy(UInt64(copy.status.st_ino)) }
            return copy.file
        }
    }

    private func noteUnsyncedCopy(_ privateInode: UInt64) throws(FSError) {
        let full = unsyncedCopies.withLock { copies -> Bool in
            copies.insert(privateInode)
            return copies.count > 1 << 16
        }
        guard full else { return }
        try privateLayer.syncAll()
        unsyncedCopies.withLock { $0.removeAll() }
    }

    /// Copies a whole subtree up (before renaming a directory that shared layers provide).
    func copyUpTree(_ path: String) throws(FSError) {
        let resolved = try resolve(path)
        try copyUp(path, withData: true)
        guard resolved.isDirectory else { return }
        for child in try list(path: path) { try copyUpTree(Union.join(path, child.name)) }
    }

    /// Makes the directory at `path` exist in the private layer, copying up its ancestors as needed.
    func ensurePrivateDirectory(_ path: String) throws(FSError) {
        if privateLayer.holdsDirectory(path) { return }
        if let st = try privateLayer.status(path) {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw FSError.notDirectory }
            return
        }
        guard !path.isEmpty else { throw FSError.notFound }
        try ensurePrivateDirectory(Beneath.split(path).parent)
        try copyUp(path, withData: false)
    }

    // MARK: Revert

    /// Drops the private copy of `path` (and everything beneath it) and every whiteout of it, so the
    /// shared original shows again. Returns the paths whose kernel caches must be dropped.
    public func revert(_ path: String) throws -> [String] {
        try gate.change { () throws -> [String] in try revertPassingGate(try Beneath.normalize(path)) }
    }

    private func revertPassingGate(_ path: String) throws -> [String] {
        guard !path.isEmpty else { throw StoreError("revert needs a path inside the VLFS, not its root") }
        var changed = Set(try privateLayer.paths(under: path).map(\.path))
        try privateLayer.removeTree(path)
        for whiteouts in stack.whiteouts {
            let hidden = whiteouts.all.filter { $0 == path || $0.hasPrefix(path + "/") }
            if try whiteouts.remove(path) { changed.formUnion(hidden) }
        }
        forgetDirectories()
        descriptors.dropAll(sharedOnly: false)
        for changedPath in changed { inodes.unlinked(changedPath) }
        return changed.sorted()
    }
}

extension Union {
    /// Moves the private layer and the whiteout lists to `archive` and starts empty ones. The caller
    /// holds the gate closed and must then reload the stack (whiteout sets are read from their files).
    /// Returns every path that changed, for the kernel's caches.
    public func resetPrivateLayer(archivingTo archive: String) throws -> [String] {
        var changed = Set(try privateLayer.paths(under: "").map(\.path).dropFirst())
        for whiteouts in stack.whiteouts { changed.formUnion(whiteouts.all) }
        try privateLayer.archive(to: archive + "/private")
        if Glibc.rename(whiteoutDirectory, archive + "/whiteouts") != 0 && errno != ENOENT { throw FSError.last }
        try makeDirectories(whiteoutDirectory, mode: 0o700)
        // Durable before the reset is reported: a power cut must not bring the old layer back.
        for directory in [archive, (privateRoot as NSString).deletingLastPathComponent] { try AtomicFile.syncDirectory(directory) }
        forgetDirectories()
        descriptors.dropAll(sharedOnly: false)
        for path in changed { inodes.unlinked(path) }
        return changed.sorted()
    }
}
