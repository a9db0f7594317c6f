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
        let fd = try check { Glibc.open(privatePath(path), (flags | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW) & ~O_NOCTTY, mode_t(mode & 0o7777)) }
        do {
            try own(path, caller: caller)
            let entry = try newEntry(path)
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
        try check { mkdir(privatePath(path), mode_t(mode & 0o7777)) }
        try own(path, caller: caller)
        return try newEntry(path)
    }

    public func makeNode(parent: UInt64, name: String, mode: UInt32, device: UInt64, caller: Caller) throws(FSError) -> Entry {
        let path = try prepareNewName(parent: parent, name: name)
        try check { mknod(privatePath(path), mode_t(mode), dev_t(device)) }
        try own(path, caller: caller)
        return try newEntry(path)
    }

    public func makeSymlink(parent: UInt64, name: String, target: String, caller: Caller) throws(FSError) -> Entry {
        let path = try prepareNewName(parent: parent, name: name)
        try check { symlink(target, privatePath(path)) }
        try own(path, caller: caller)
        return try newEntry(path)
    }

    /// A hard link: both names end up in the private layer (links cannot span layers).
    public func link(_ inode: UInt64, parent: UInt64, name: String) throws(FSError) -> Entry {
        let source = try path(of: inode)
        guard !(try resolve(source)).isDirectory else { throw FSError.notPermitted }
        try copyUp(source, withData: true)
        let path = try prepareNewName(parent: parent, name: name)
        try check { Glibc.link(privatePath(source), privatePath(path)) }
        return try newEntry(path)
    }

    /// Checks that a name is free in the union and that its private parent exists.
    private func prepareNewName(parent: UInt64, name: String) throws(FSError) -> String {
        let parentPath = try path(of: parent)
        let path = Union.join(parentPath, name)
        if (try? resolve(path)) != nil { throw FSError.exists }
        try ensurePrivateDirectory(parentPath)
        return path
    }

    /// The new file belongs to the caller; its group is the parent's when the parent is setgid.
    private func own(_ path: String, caller: Caller) throws(FSError) {
        var parent = stat()
        try check { lstat(privatePath(Union.split(path).parent), &parent) }
        let gid = (parent.st_mode & S_ISGID) != 0 ? parent.st_gid : caller.gid
        try check { lchown(privatePath(path), caller.uid, gid) }
    }

    private func newEntry(_ path: String) throws(FSError) -> Entry {
        inodes.unlinked(path)
        let resolved = try resolve(path)
        let inode = inodes.inode(for: path, identity: identity(of: resolved), countLookup: true)
        return Entry(inode: inode, attributes: try attributes(of: resolved, inode: inode))
    }

    // MARK: Removing

    public func unlink(parent: UInt64, name: String) throws(FSError) {
        let path = Union.join(try path(of: parent), name)
        let resolved = try resolve(path)
        guard !resolved.isDirectory else { throw FSError.isDirectory }
        if resolved.isPrivate { try check { Glibc.unlink(privatePath(path)) } }
        try whiteOut(path, in: resolved.stack)
        inodes.unlinked(path, hasOtherLinks: resolved.isHardLinked)
    }

    public func removeDirectory(parent: UInt64, name: String) throws(FSError) {
        let path = Union.join(try path(of: parent), name)
        let resolved = try resolve(path)
        guard resolved.isDirectory else { throw FSError.notDirectory }
        let inode = inodes.inode(for: path, identity: nil, countLookup: false)
        guard try list(inode).isEmpty else { throw FSError.notEmpty }
        if resolved.isPrivate { try removePrivateTree(path) }
        try whiteOut(path, in: resolved.stack)
        inodes.unlinked(path)
    }

    /// Records a whiteout in every shared layer that provides `path` (visibly, through its parent).
    func whiteOut(_ path: String, in stack: LayerStack) throws(FSError) {
        let (parent, name) = Union.split(path)
        guard let parentResolved = try? resolve(parent, in: stack) else { return }
        for (layer, directory) in parentResolved.contributors {
            guard let entry = try trees.tree(directory, in: stack.layers[layer].store).entry(named: name) else { continue }
            // Only a directory's whiteout changes what directories are made of (unlinking files stays cheap).
            let isDirectory = entry.kind == .directory
            do { try stack.whiteouts[layer].add(path, isDirectory: isDirectory) } catch { throw FSError(EIO) }
            if isDirectory { forgetDirectories() }
        }
    }

    private func removePrivateTree(_ path: String) throws(FSError) {
        do { try removeTree(privatePath(path)) } catch let error as SystemError { throw FSError(error.errno) } catch { throw FSError(EIO) }
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
            try check { renameat2(AT_FDCWD, privatePath(from), AT_FDCWD, privatePath(to), 2) }
            try whiteOut(from, in: source.stack)
            try whiteOut(to, in: target.stack)
            inodes.exchanged(from, to)
            return
        }
        if let target {
            if flags.contains(.noReplace) { throw FSError.exists }
            if target.isDirectory {
                guard source.isDirectory else { throw FSError.isDirectory }
                guard try list(inodes.inode(for: to, identity: nil, countLookup: false)).isEmpty else { throw FSError.notEmpty }
            } else if source.isDirectory {
                throw FSError.notDirectory
            }
        }
        try copyUpTree(from)
        try ensurePrivateDirectory(Union.split(to).parent)
        if let target, target.isPrivate, target.isDirectory { try removePrivateTree(to) }
        try check { Glibc.rename(privatePath(from), privatePath(to)) }
        try whiteOut(from, in: source.stack)
        try whiteOut(to, in: source.stack)
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

    public func setAttributes(_ inode: UInt64, _ changes: AttributeChanges, openFile: Int32?) throws(FSError) -> stat {
        let path = try path(of: inode)
        try copyUp(path, withData: changes.size != 0)
        let target = privatePath(path)
        if let mode = changes.mode { try check { chmod(target, mode_t(mode & 0o7777)) } }
        if changes.uid != nil || changes.gid != nil {
            try check { lchown(target, changes.uid ?? UInt32.max, changes.gid ?? UInt32.max) }
        }
        if let size = changes.size {
            if let openFile { try check { ftruncate(openFile, off_t(size)) } } else { try check { truncate(target, off_t(size)) } }
        }
        if changes.accessTime != nil || changes.modificationTime != nil {
            func spec(_ change: AttributeChanges.TimeChange?) -> timespec {
                switch change {
                case nil: timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2)  // UTIME_OMIT
                case .now: timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)  // UTIME_NOW
                case .at(let time): time
                }
            }
            let times = [spec(changes.accessTime), spec(changes.modificationTime)]
            try check { utimensat(AT_FDCWD, target, times, AT_SYMLINK_NOFOLLOW) }
        }
        return try attributes(of: inode)
    }

    public func setExtendedAttribute(_ inode: UInt64, name: String, value: [UInt8], flags: Int32) throws(FSError) {
        guard !name.hasPrefix("user.strata.") else { throw FSError.notPermitted }
        let path = try path(of: inode)
        try copyUp(path, withData: true)
        try check { value.withUnsafeBytes { lsetxattr(privatePath(path), name, $0.baseAddress, $0.count, flags) } }
    }

    public func removeExtendedAttribute(_ inode: UInt64, name: String) throws(FSError) {
        guard !name.hasPrefix("user.strata.") else { throw FSError.notPermitted }
        let path = try path(of: inode)
        try copyUp(path, withData: true)
        try check { lremovexattr(privatePath(path), name) }
    }

    // MARK: Copy-up

    /// Makes `path` private, keeping type, mode, owner, times and xattrs; a regular file's bytes are
    /// copied from its blob in the kernel (`copy_file_range`) unless `withData` is false (truncation).
    /// The copy is built under a temporary name and renamed into place, so a crash never leaves half a file.
    /// A hard link stays one file: its other visible names come up with it, linked to the copy (the
    /// kernel shares one inode between them, so it could not tell them apart afterwards anyway).
    func copyUp(_ path: String, withData: Bool) throws(FSError) {
        let resolved = try resolve(path)
        guard case .shared(let layer, let entry) = resolved.top else { return }
        let links = entry.linkGroup == 0 ? [] : try linkedPaths(of: entry.linkGroup, layer: layer, in: resolved.stack).filter { $0 != path }
        for name in [path] + links { try ensurePrivateDirectory(Union.split(name).parent) }
        try copyUpLock.withLock { _ throws(FSError) in
            guard !(try resolve(path)).isPrivate else { return }
            let target = privatePath(path)
            let temporary = privatePath(Union.join(Union.split(path).parent, ".strata-copy-up-\(UInt32.random(in: 0...UInt32.max))"))
            switch entry.kind {
            case .directory:
                try check { mkdir(target, 0o700) }
                try applyMetadata(entry, to: target)
                return
            case .regular:
                let destination = try check { Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
                defer { close(destination) }
                if withData {
                    let source = try check { Glibc.open(resolved.stack.layers[layer].blobPath(entry), O_RDONLY | O_CLOEXEC) }
                    defer { close(source) }
                    var remaining = Int(entry.size)
                    while remaining > 0 {
                        let copied = try check { copy_file_range(source, nil, destination, nil, remaining, 0) }
                        if copied == 0 { break }
                        remaining -= copied
                    }
                }
            case .symlink:
                try check { symlink(entry.target ?? "", temporary) }
            case .characterDevice, .blockDevice, .fifo, .socket:
                try check { mknod(temporary, mode_t(entry.statMode), dev_t(entry.device)) }
            }
            do throws(FSError) {
                try applyMetadata(entry, to: temporary)
                for name in links { try check { Glibc.link(temporary, privatePath(name)) } }
                try check { Glibc.rename(temporary, target) }
            } catch {
                Glibc.unlink(temporary)
                throw error
            }
            if let inode = inodes.inode(at: path) {
                var st = stat()
                if lstat(target, &st) == 0 { inodes.alias(.privateInode(UInt64(st.st_ino)), to: inode) }
            }
        }
    }

    /// Copies a whole subtree up (before renaming a directory that shared layers provide).
    func copyUpTree(_ path: String) throws(FSError) {
        let resolved = try resolve(path)
        try copyUp(path, withData: true)
        guard resolved.isDirectory else { return }
        let inode = inodes.inode(for: path, identity: nil, countLookup: false)
        for child in try list(inode) { try copyUpTree(Union.join(path, child.name)) }
    }

    /// Makes the directory at `path` exist in the private layer, copying up its ancestors as needed.
    func ensurePrivateDirectory(_ path: String) throws(FSError) {
        var st = stat()
        if lstat(privatePath(path), &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw FSError.notDirectory }
            return
        }
        guard !path.isEmpty else { throw FSError.last }
        try ensurePrivateDirectory(Union.split(path).parent)
        try copyUp(path, withData: false)
    }

    /// Owner before mode (chown clears setuid), then xattrs and times.
    private func applyMetadata(_ entry: TreeEntry, to target: String) throws(FSError) {
        try check { lchown(target, entry.uid, entry.gid) }
        if entry.kind != .symlink { try check { chmod(target, mode_t(entry.mode)) } }
        for xattr in entry.xattrs {
            try check { xattr.value.withUnsafeBytes { lsetxattr(target, xattr.name, $0.baseAddress, $0.count, 0) } }
        }
        let times = [entry.mtime.timespec, entry.mtime.timespec]
        try check { utimensat(AT_FDCWD, target, times, AT_SYMLINK_NOFOLLOW) }
    }

    // MARK: Revert

    /// Drops the private copy of `path` (and everything beneath it) and every whiteout of it, so the
    /// shared original shows again. Returns the paths whose kernel caches must be dropped.
    public func revert(_ path: String) throws -> [String] {
        let path = path.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        guard !path.isEmpty else { throw FSError.invalid }
        var changed: Set<String> = []
        var st = stat()
        if lstat(privatePath(path), &st) == 0 {
            changed.insert(path)
            if (st.st_mode & S_IFMT) == S_IFDIR {
                try FileManager.default.subpathsOfDirectory(atPath: privatePath(path)).forEach { changed.insert(Union.join(path, $0)) }
            }
            try removeTree(privatePath(path))
        }
        for whiteouts in stack.whiteouts {
            let hidden = whiteouts.all.filter { $0 == path || $0.hasPrefix(path + "/") }
            if try whiteouts.remove(path) { changed.formUnion(hidden) }
        }
        forgetDirectories()
        for changedPath in changed { inodes.unlinked(changedPath) }
        return changed.sorted()
    }
}

extension Union {
    /// Moves the private layer and the whiteout lists to `archive` and starts empty ones. The caller
    /// holds the gate closed and must then reload the stack (whiteout sets are read from their files).
    /// Returns every path that changed, for the kernel's caches.
    public func resetPrivateLayer(archivingTo archive: String) throws -> [String] {
        var changed = Set(try FileManager.default.subpathsOfDirectory(atPath: privateRoot))
        for whiteouts in stack.whiteouts { changed.formUnion(whiteouts.all) }
        var rootStat = stat()
        _ = lstat(privateRoot, &rootStat)
        guard Glibc.rename(privateRoot, archive + "/private") == 0 else { throw FSError.last }
        if Glibc.rename(whiteoutDirectory, archive + "/whiteouts") != 0 && errno != ENOENT { throw FSError.last }
        try makeDirectories(privateRoot, mode: mode_t(rootStat.st_mode & 0o7777))
        chown(privateRoot, rootStat.st_uid, rootStat.st_gid)
        try makeDirectories(whiteoutDirectory, mode: 0o700)
        forgetDirectories()
        for path in changed { inodes.unlinked(path) }
        return changed.sorted()
    }
}
