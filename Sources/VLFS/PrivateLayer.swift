import CLinux
import Foundation
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The private layer of a VLFS: the directory the appliance writes, and so the one place where every
/// name, symlink and byte may be hostile. Nothing else in the daemon touches it. Every path is resolved
/// beneath a descriptor of the layer's root (`Beneath`: no symlinks, no `..`, no mount crossings) and
/// the last name is acted on with a `*at()` call that does not follow it. Files are opened O_PATH first
/// and reopened for I/O only once seen to be regular files, so a name swapped for a device node is never
/// opened by root. Paths are relative to the root ("" is the root), as in `Union`, and may be as long as
/// the kernel let the appliance make them.
///
/// Copies of shared files are built in a work directory beside the layer (same filesystem, outside the
/// namespace), their bytes written ahead of the rename (`CopyOrdering`), and renamed into place whole:
/// the namespace never shows half a copy, nor a temporary name, even after a crash. The rename itself is not waited for (the copy's name and
/// inode are journaled together with it): a crash just after shows the original, which is what the
/// appliance saw before it asked; an fsync of the copy, or of its directory, makes the copy stay.
final class PrivateLayer: Sendable {
    let path: String
    let workPath: String
    private let root: Atomic<Int32>
    /// Roots replaced by a reset, kept open: an operation that began before the reset may still hold one.
    private let retiredRoots = Mutex<[Int32]>([])
    private let work: Int32
    private let copyOrdering: CopyOrdering
    private let workNames = Atomic<UInt64>(0)
    /// The directories requests act in, held open (forgotten by whatever moves or removes one).
    private let directories = PrivateDirectories(capacity: 256)
    /// `/proc/self/fd`, through whose magic links an O_PATH descriptor is reopened or changed in place.
    private static let processDescriptors = Glibc.open("/proc/self/fd", O_DIRECTORY | Beneath.pathOnly | O_CLOEXEC)
    /// For the names of copies in the work directory (unique with `workNames`).
    private static let processID = getpid()

    init(path: String, workPath: String) throws {
        self.path = path
        self.workPath = workPath
        try makeDirectories(workPath, mode: 0o700)
        let rootDescriptor = try sys("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let workDescriptor = try sys("open", workPath) { Glibc.open(workPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        root = Atomic(rootDescriptor)
        work = workDescriptor
        copyOrdering = CopyOrdering.forFilesystem(of: workDescriptor)
        var rootStatus = stat(), workStatus = stat()
        guard fstat(rootDescriptor, &rootStatus) == 0, fstat(workDescriptor, &workStatus) == 0, rootStatus.st_dev == workStatus.st_dev else {
            throw StoreError("\(workPath) and \(path) must be on one filesystem (copies are renamed from one to the other)")
        }
    }

    deinit {
        close(root.load(ordering: .relaxed))
        close(work)
        for fd in retiredRoots.withLock({ $0 }) { close(fd) }
    }

    private var rootDescriptor: Int32 { root.load(ordering: .acquiring) }

    /// Opens `path` beneath the root: the caller closes the descriptor.
    private func descriptor(_ path: String, _ flags: Int32) throws(FSError) -> Int32 {
        if path.isEmpty { return try FSError.opened(Beneath.open(rootDescriptor, "", flags: flags)) }
        return try atParent(path) { directory, name throws(FSError) in try FSError.opened(Beneath.open(directory, name, flags: flags)) }
    }

    /// Runs `body` with the directory at `path` open (O_PATH): the root, or one `directories` holds.
    @inline(__always)
    private func atDirectory<T>(_ path: String, _ body: (_ directory: Int32) throws(FSError) -> T) throws(FSError) -> T {
        if path.isEmpty { return try body(rootDescriptor) }
        return try directories.with(path, open: { Beneath.open(rootDescriptor, path, flags: O_DIRECTORY | Beneath.pathOnly) }, body)
    }

    /// Runs `body` with the parent directory of `path` open and the last name (one component, never
    /// `.` or `..`, so that a `*at()` call on it stays in that directory).
    @inline(__always)
    @discardableResult
    private func atParent<T>(_ path: String, _ body: (_ directory: Int32, _ name: String) throws(FSError) -> T) throws(FSError) -> T {
        let (parent, name) = Beneath.split(path)
        guard !name.isEmpty, name != ".", name != ".." else { throw FSError.invalid }
        return try atDirectory(parent) { directory throws(FSError) in try body(directory, name) }
    }

    /// What a failure to reach a path in the private layer means for the union: nothing there (the
    /// name, or a real directory on the way to it, is missing; a symlink on the way hides what is below).
    private static func isAbsence(_ error: FSError) -> Bool {
        error.code == ENOENT || error.code == ENOTDIR || error.code == ELOOP
    }

    /// Runs `body` with the file at `path` itself open O_PATH (a symlink, not its target).
    private func atFile<T>(_ path: String, _ body: (_ file: Int32, _ st: stat) throws(FSError) -> T) throws(FSError) -> T {
        let fd = try descriptor(path, Beneath.pathOnly | O_NOFOLLOW)
        defer { close(fd) }
        var st = stat()
        try check { fstat(fd, &st) }
        return try body(fd, st)
    }

    // MARK: Reading

    /// The file's status, or nil when the private layer has nothing at `path` (nor a real directory
    /// on the way to it: a symlink on the way hides everything below it, as in the union). One fstatat
    /// on the parent's descriptor, which does not follow the last name.
    func status(_ path: String) throws(FSError) -> stat? {
        var st = stat()
        if path.isEmpty {
            try check { fstat(rootDescriptor, &st) }
            return st
        }
        do {
            try atParent(path) { directory, name throws(FSError) in try check { fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) } }
            return st
        } catch where PrivateLayer.isAbsence(error) {
            return nil
        }
    }

    /// Whether a directory is at `path`; it is then held for the requests that follow, which act in it.
    func holdsDirectory(_ path: String) -> Bool {
        (try? atDirectory(path) { _ throws(FSError) in true }) ?? false
    }

    /// Opens a regular file for I/O (never a device, FIFO or symlink put in its place).
    func open(_ path: String, flags: Int32) throws(FSError) -> Int32 {
        try atFile(path) { file, st throws(FSError) in try PrivateLayer.reopen(file, st, flags: flags) }
    }

    /// Opens for I/O the file an O_PATH descriptor pins, if it is a regular file.
    static func reopen(_ file: Int32, _ st: stat, flags: Int32) throws(FSError) -> Int32 {
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw FSError.isDirectory
        case S_IFLNK: throw FSError(ELOOP)
        default: throw FSError(ENXIO)
        }
        return try check { openat(processDescriptors, String(file), (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC) }
    }

    func readLink(_ path: String) throws(FSError) -> String {
        try atParent(path) { directory, name throws(FSError) in
            var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = try check { buffer.withUnsafeMutableBufferPointer { readlinkat(directory, name, $0.baseAddress!, $0.count - 1) } }
            return String(decoding: buffer[..<length], as: UTF8.self)
        }
    }

    /// Calls `body` for each name in the directory at `path` with its `d_type`, its inode number in the
    /// private layer and, when `withStatus`, its status (nil if it vanished meanwhile).
    func list(_ path: String, withStatus: Bool, _ body: (_ name: String, _ type: UInt8, _ inode: UInt64, _ status: stat?) throws(FSError) -> Void) throws(FSError) {
        let fd = try descriptor(path, O_RDONLY | O_DIRECTORY)
        guard let handle = fdopendir(fd) else {
            close(fd)
            throw FSError.last
        }
        defer { closedir(handle) }
        while let dirent = readdir(handle) {
            let name = withUnsafeBytes(of: dirent.pointee.d_name) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            var st = stat()
            let status = withStatus && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
            try body(name, dirent.pointee.d_type, UInt64(dirent.pointee.d_ino), status)
        }
    }

    /// Every path at and beneath `path`, parents before children; symlinks are listed, not followed.
    func paths(under path: String) throws(FSError) -> [(path: String, isDirectory: Bool)] {
        guard let st = try status(path) else { return [] }
        let isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
        return isDirectory ? try paths(inDirectory: path) : [(path, false)]
    }

    /// Iterative, with a stack of its own: the appliance chooses how deep the tree goes.
    private func paths(inDirectory path: String) throws(FSError) -> [(path: String, isDirectory: Bool)] {
        var result: [(path: String, isDirectory: Bool)] = []
        var pending = [path]
        while let directory = pending.popLast() {
            result.append((directory, true))
            try list(directory, withStatus: false) { name, type, _, _ in
                let child = Union.join(directory, name)
                if type == UInt8(DT_DIR) { pending.append(child) } else { result.append((child, false)) }
            }
        }
        return result
    }

    func extendedAttribute(_ path: String, name: String) throws(FSError) -> [UInt8] {
        try atFile(path) { file, _ throws(FSError) in
            guard let value = try FSError.mapping({ try ExtendedAttributes.get(.descriptor(file), name) }) else { throw FSError.noAttribute }
            return value
        }
    }

    /// The attribute of the entry at `path`, or nil when the private layer has nothing there (as
    /// `status`): one getxattrat on the parent's descriptor where the kernel has it.
    func extendedAttributeIfPresent(_ path: String, name: String) throws(FSError) -> [UInt8]? {
        let value: [UInt8]?
        do {
            if path.isEmpty {
                value = try FSError.mapping { try ExtendedAttributes.get(.descriptor(rootDescriptor), name) }
            } else {
                value = try atParent(path) { directory, entry throws(FSError) in
                    try FSError.mapping { try ExtendedAttributes.get(.entry(entry, in: directory, path: path), name) }
                }
            }
        } catch where PrivateLayer.isAbsence(error) {
            return nil
        }
        guard let value else { throw FSError.noAttribute }
        return value
    }

    func extendedAttributeNames(_ path: String) throws(FSError) -> [String] {
        try atFile(path) { file, _ throws(FSError) in try FSError.mapping { try ExtendedAttributes.names(.descriptor(file)) } }
    }

    /// The file as a tree entry (its digest left unset), for building an image of the union.
    func treeEntry(_ path: String) throws(FSError) -> TreeEntry {
        try atFile(path) { file, st throws(FSError) in
            try FSError.mapping { try DirectoryImporter.entry(for: st, name: Beneath.split(path).name, descriptor: file) }
        }
    }

    func statistics() throws(FSError) -> statvfs {
        var result = statvfs()
        try check { fstatvfs(rootDescriptor, &result) }
        return result
    }

    // MARK: Changing

    // New entries belong to their creator; the group is the directory's when that is setgid. chown
    // clears setuid and setgid on non-directories, even as root, so those bits are set again after it.

    /// Creates a regular file and opens it: its descriptor and status.
    func create(_ path: String, flags: Int32, mode: UInt32, owner: Caller) throws(FSError) -> (descriptor: Int32, status: stat) {
        try atParent(path) { directory, name throws(FSError) in
            let fd = try check { openat(directory, name, (flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC) & ~O_NOCTTY, mode_t(mode & 0o7777)) }
            do throws(FSError) {
                var st = stat()
                try check { fstat(fd, &st) }
                // Made as the daemon: its group is already the directory's where that is setgid, the
                // daemon's elsewhere; so when owner and group match the caller's, they are right.
                if st.st_uid != owner.uid || st.st_gid != owner.gid {
                    let group = try PrivateLayer.group(of: owner, in: directory)
                    try check { fchown(fd, owner.uid, group) }
                    if mode & 0o6000 != 0 { try check { fchmod(fd, mode_t(mode & 0o7777)) } }
                    try check { fstat(fd, &st) }
                }
                return (fd, st)
            } catch {
                close(fd)
                throw error
            }
        }
    }

    func makeDirectory(_ path: String, mode: UInt32, owner: Caller) throws(FSError) {
        try atParent(path) { directory, name throws(FSError) in
            try check { mkdirat(directory, name, mode_t(mode & 0o7777)) }
            try PrivateLayer.own(directory, name, owner)
        }
    }

    func makeNode(_ path: String, mode: UInt32, device: UInt64, owner: Caller) throws(FSError) {
        try atParent(path) { directory, name throws(FSError) in
            try check { mknodat(directory, name, mode_t(mode), dev_t(device)) }
            try PrivateLayer.own(directory, name, owner)
            if mode & 0o6000 != 0 { try FSError.mapping { try FileAt.name(name, inDirectory: directory).changeMode(mode_t(mode & 0o7777)) } }
        }
    }

    func makeSymlink(_ path: String, target: String, owner: Caller) throws(FSError) {
        try atParent(path) { directory, name throws(FSError) in
            try check { symlinkat(target, directory, name) }
            try PrivateLayer.own(directory, name, owner)
        }
    }

    private static func own(_ directory: Int32, _ name: String, _ owner: Caller) throws(FSError) {
        let group = try group(of: owner, in: directory)
        try FSError.mapping { try FileAt.name(name, inDirectory: directory).changeOwner(uid: owner.uid, gid: group) }
    }

    private static func group(of owner: Caller, in directory: Int32) throws(FSError) -> UInt32 {
        var st = stat()
        try check { fstat(directory, &st) }
        return (st.st_mode & S_ISGID) != 0 ? st.st_gid : owner.gid
    }

    func link(_ source: String, to path: String) throws(FSError) {
        try atParent(source) { sourceDirectory, sourceName throws(FSError) in
            try atParent(path) { directory, name throws(FSError) in try check { linkat(sourceDirectory, sourceName, directory, name, 0) } }
        }
    }

    func unlink(_ path: String) throws(FSError) {
        try atParent(path) { directory, name throws(FSError) in try check { unlinkat(directory, name, 0) } }
    }

    func removeDirectory(_ path: String) throws(FSError) {
        try atParent(path) { directory, name throws(FSError) in try check { unlinkat(directory, name, AT_REMOVEDIR) } }
        directories.forget(under: path)
    }

    /// Removes `path` and everything beneath it, through descriptors (`StrataStore.removeTree(in:)`).
    func removeTree(_ path: String) throws(FSError) {
        let root = try check { fcntl(rootDescriptor, F_DUPFD_CLOEXEC, 0) }
        let directory = FileDescriptor(raw: root, path: self.path)
        defer { directories.forget(under: path) }
        try FSError.mapping { try StrataStore.removeTree(in: directory, path) }
    }

    func rename(_ from: String, to: String, flags: UInt32 = 0) throws(FSError) {
        try atParent(from) { sourceDirectory, sourceName throws(FSError) in
            try atParent(to) { directory, name throws(FSError) in try check { renameat2(sourceDirectory, sourceName, directory, name, flags) } }
        }
        // Both: a directory may have moved away from `from`, or been replaced (or exchanged) at `to`.
        directories.forget(under: from)
        directories.forget(under: to)
    }

    func setOwner(_ path: String, uid: UInt32, gid: UInt32) throws(FSError) {
        try atEntry(path) { file throws(FSError) in try FSError.mapping { try file.changeOwner(uid: uid, gid: gid) } }
    }

    func setMode(_ path: String, _ mode: UInt32) throws(FSError) {
        try atEntry(path) { file throws(FSError) in try FSError.mapping { try file.changeMode(mode_t(mode & 0o7777)) } }
    }

    func setTimes(_ path: String, access: timespec, modification: timespec) throws(FSError) {
        try atEntry(path) { file throws(FSError) in try FSError.mapping { try file.setTimes([access, modification]) } }
    }

    /// The entry at `path`, never followed if it is a symlink; the root itself is "." in the root (its
    /// attributes change like any other's).
    private func atEntry(_ path: String, _ body: (FileAt) throws(FSError) -> Void) throws(FSError) {
        if path.isEmpty { return try body(.name(".", inDirectory: rootDescriptor)) }
        try atParent(path) { directory, name throws(FSError) in try body(.name(name, inDirectory: directory)) }
    }

    func truncate(_ path: String, size: Int) throws(FSError) {
        let fd = try open(path, flags: O_WRONLY)
        defer { close(fd) }
        try check { ftruncate(fd, off_t(size)) }
    }

    func setExtendedAttribute(_ path: String, name: String, value: [UInt8], flags: Int32) throws(FSError) {
        try atFile(path) { file, _ throws(FSError) in
            try FSError.mapping { try ExtendedAttributes.set(.descriptor(file), ExtendedAttribute(name: name, value: value), flags: flags) }
        }
    }

    func removeExtendedAttribute(_ path: String, name: String) throws(FSError) {
        try atFile(path) { file, _ throws(FSError) in try FSError.mapping { try ExtendedAttributes.remove(.descriptor(file), name) } }
    }

    /// Makes everything on the layer's filesystem durable.
    func syncAll() throws(FSError) {
        try check { syncfs(rootDescriptor) }
    }

    /// Makes the directory's entries durable.
    func syncDirectory(_ path: String) throws(FSError) {
        let fd = try descriptor(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try check { fsync(fd) }
    }

    // MARK: Copies of shared files

    /// Puts a copy of a shared entry at `path` (and, for a hard-link group, at `links` too): built in the
    /// work directory with all its metadata, its bytes synced, then linked and renamed into place
    /// without replacing anything. `contents` is the blob to copy a regular file's bytes
    /// from, nil for an empty file. Returns the copy's status and, when `opening` flags are given, the
    /// copy opened with them: the very file placed, even if its name is reverted at once.
    @discardableResult
    func place(_ entry: TreeEntry, contents: Int32?, at path: String, links: [String] = [], opening flags: Int32? = nil) throws(FSError) -> (status: stat, file: Int32?) {
        let name = "copy-\(PrivateLayer.processID)-\(workNames.wrappingAdd(1, ordering: .relaxed).newValue)"
        var opened: Int32?
        do throws(FSError) {
            // A regular file comes back open (the descriptor it was written through): it is reopened
            // with the caller's flags and stat'ed through it, with no second lookup of its name.
            let built = try build(entry, contents: contents, named: name)
            defer { if let built { close(built) } }
            if let flags {
                guard let built else { throw FSError.invalid }
                opened = try check { openat(PrivateLayer.processDescriptors, String(built), (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC) }
            }
            // Its bytes reach the disk before any name of it replaces the original: a crash then shows
            // the original or the whole copy. (Metadata alone is journaled with the link and rename.)
            if let built, contents != nil && entry.size > 0 { try copyOrdering.finish(built) }
            for link in links {
                try atParent(link) { directory, linkName throws(FSError) in try check { linkat(work, name, directory, linkName, 0) } }
            }
            return try atParent(path) { directory, finalName throws(FSError) in
                try check { renameat2(work, name, directory, finalName, Beneath.renameNoReplace) }
                var st = stat()
                if let built {
                    try check { fstat(built, &st) }
                } else {
                    try check { fstatat(directory, finalName, &st, AT_SYMLINK_NOFOLLOW) }
                }
                return (st, opened)
            }
        } catch {
            if let opened { close(opened) }
            _ = unlinkat(work, name, entry.kind == .directory ? AT_REMOVEDIR : 0)
            throw error
        }
    }

    /// Drops what copies a crash interrupted left in the work directory (never part of the namespace).
    /// Only the daemon calls this, before it serves: other processes may open the same VLFS meanwhile.
    func discardUnfinishedCopies() throws(FSError) {
        try FSError.mapping {
            for name in try FileManager.default.contentsOfDirectory(atPath: workPath) { try StrataStore.removeTree(workPath + "/" + name) }
        }
    }

    /// Makes the copy named `name` in the work directory; a regular file is returned open for reading
    /// and writing, its bytes on their way to the disk (the caller closes it and waits for them).
    private func build(_ entry: TreeEntry, contents: Int32?, named name: String) throws(FSError) -> Int32? {
        switch entry.kind {
        case .regular:
            let fd = try check { openat(work, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) }
            do throws(FSError) {
                if let contents {
                    try FSError.mapping { try copyContents(from: contents, to: fd, size: entry.size) }
                    // The disk writes while the metadata is set (`place` waits for them).
                    copyOrdering.start(fd)
                }
                // Through the descriptor: no lookup of the name for each attribute.
                try FSError.mapping { try Checkout.applyMetadata(entry, to: FileAt(descriptor: fd, path: name)) }
            } catch {
                close(fd)
                throw error
            }
            return fd
        case .directory:
            try check { mkdirat(work, name, 0o700) }
            try applyMetadata(entry, name)
        case .symlink:
            try check { symlinkat(entry.target ?? "", work, name) }
            try applyMetadata(entry, name)
        case .characterDevice, .blockDevice, .fifo, .socket:
            try check { mknodat(work, name, mode_t(entry.kind.fileTypeBits) | 0o600, dev_t(entry.device)) }
            try applyMetadata(entry, name)
        }
        return nil
    }

    /// A copy in the work directory gets the shared entry's metadata as a checkout's files do.
    private func applyMetadata(_ entry: TreeEntry, _ name: String) throws(FSError) {
        try FSError.mapping { try Checkout.applyMetadata(entry, to: .name(name, inDirectory: work)) }
    }

    // MARK: Reset

    /// Moves the whole layer to `archive` and starts an empty one with the same owner and mode.
    func archive(to archive: String) throws(FSError) {
        var rootStatus = stat()
        try check { fstat(rootDescriptor, &rootStatus) }
        try check { Glibc.rename(path, archive) }
        try FSError.mapping { try makeDirectories(path, mode: mode_t(rootStatus.st_mode & 0o7777)) }
        let fresh = try check { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        try check { fchown(fresh, rootStatus.st_uid, rootStatus.st_gid) }
        try check { fchmod(fresh, rootStatus.st_mode & 0o7777) }
        let old = root.exchange(fresh, ordering: .acquiringAndReleasing)
        retiredRoots.withLock { $0.append(old) }
        directories.forget(under: "")
    }
}
