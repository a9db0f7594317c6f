import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a stored tree out to a directory so that it is identical to its source in content and
/// metadata: type, mode (setuid included), owner, nanosecond mtimes, xattrs, device numbers and hard links.
///
/// Everything is created and changed relative to directory descriptors with calls that never follow
/// a symlink, and every path given is resolved beneath the root with `Beneath`, so a directory someone
/// else can write to (a checkout a delta is applied to) cannot redirect a write outside it, and trees
/// deeper than PATH_MAX check out.
public final class Checkout {
    let store: ObjectStore
    /// The directory written into.
    public let root: FileDescriptor
    /// Path (beneath the root) first checked out for each hard-link group, to link the rest to.
    private var linkLeaders: [UInt32: String] = [:]
    /// Regular files get their size as a hole and no content (a metadata image, whose data is read from
    /// the store by other means); the store is then never read.
    public var sizesOnly = false

    /// Checks `tree` out into `destination`, which must be new or empty.
    public static func run(_ tree: TreeEntry, from store: ObjectStore, to destination: String) throws {
        // 0700 until its contents are in and it gets its final metadata: nobody else looks in meanwhile.
        let created = mkdir(destination, 0o700) == 0
        guard created || errno == EEXIST else { throw SystemError("mkdir", destination) }
        let checkout = try Checkout(into: destination, from: store)
        if !created, !(try checkout.root.entries().isEmpty) { throw StoreError("\(destination): checkout needs a new or empty directory") }
        try checkout.fill(checkout.root, with: tree, at: "")
        try Checkout.applyMetadata(tree, to: .descriptor(checkout.root))
    }

    /// For writing entries into an existing directory (applying a delta to a checkout).
    public init(into directory: String, from store: ObjectStore) throws {
        self.store = store
        root = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
    }

    /// Creates one entry at `relative` with its metadata: a directory empty, a file with its content
    /// from the store, a later member of a hard-link group as a link to the first. Its parent must be
    /// a directory reached beneath the root: a symlink on the way is refused (ELOOP, named), never
    /// written through.
    public func place(_ entry: TreeEntry, at relative: String) throws {
        let (parent, name) = Beneath.split(relative)
        let directory = try root.open(beneath: parent, O_DIRECTORY | Beneath.pathOnly)
        guard entry.kind == .directory else { return try node(entry, named: name, in: directory, at: relative) }
        let made = try makeDirectory(name, in: directory)
        try Checkout.applyMetadata(entry, to: .descriptor(made))
    }

    /// Sets the metadata of the entry at `relative` ("" for the root), which is acted on in place:
    /// never opened, never followed if it is a symlink.
    public func applyMetadata(_ entry: TreeEntry, at relative: String) throws {
        guard !relative.isEmpty else { return try Checkout.applyMetadata(entry, to: .descriptor(root)) }
        let (parent, name) = Beneath.split(relative)
        let directory = try root.open(beneath: parent, O_DIRECTORY | Beneath.pathOnly)
        try Checkout.applyMetadata(entry, to: .name(name, in: directory))
    }

    /// Creates the contents of `directory`, found at `relative` beneath the root, descending into each
    /// new directory by its descriptor.
    private func fill(_ directory: borrowing FileDescriptor, with tree: TreeEntry, at relative: String) throws {
        for child in try store.tree(tree.digest!).entries {
            let childRelative = relative.isEmpty ? child.name : relative + "/" + child.name
            guard child.kind == .directory else {
                try node(child, named: child.name, in: directory, at: childRelative)
                continue
            }
            let made = try makeDirectory(child.name, in: directory)
            try fill(made, with: child, at: childRelative)
            try Checkout.applyMetadata(child, to: .descriptor(made))
        }
    }

    /// A new directory, 0700 until it gets its metadata, so never more open than its target.
    private func makeDirectory(_ name: String, in directory: borrowing FileDescriptor) throws -> FileDescriptor {
        _ = try sys("mkdir", directory.path + "/" + name) { mkdirat(directory.raw, name, 0o700) }
        return try directory.open(at: name, O_RDONLY | O_DIRECTORY)
    }

    private func node(_ entry: TreeEntry, named name: String, in directory: borrowing FileDescriptor, at relative: String) throws {
        if entry.linkGroup != 0 {
            if let leader = linkLeaders[entry.linkGroup] { return try link(leader, to: name, in: directory) }
            linkLeaders[entry.linkGroup] = relative
        }
        let path = directory.path + "/" + name
        switch entry.kind {
        case .regular:
            let file = try directory.open(at: name, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            if sizesOnly {
                _ = try sys("ftruncate", path) { ftruncate(file.raw, off_t(entry.size)) }
            } else {
                let contents = try store.open(entry.digest!)
                try copyContents(from: contents.raw, to: file.raw, size: entry.size)
            }
            return try Checkout.applyMetadata(entry, to: .descriptor(file))
        case .symlink:
            _ = try sys("symlink", path) { symlinkat(entry.target ?? "", directory.raw, name) }
        case .characterDevice, .blockDevice, .fifo, .socket:
            _ = try sys("mknod", path) { mknodat(directory.raw, name, mode_t(entry.kind.fileTypeBits | 0o600), dev_t(entry.device)) }
        case .directory:
            preconditionFailure("directories are made by makeDirectory(_:in:)")
        }
        try Checkout.applyMetadata(entry, to: .name(name, in: directory))
    }

    private func link(_ leader: String, to name: String, in directory: borrowing FileDescriptor) throws {
        let (parent, leaderName) = Beneath.split(leader)
        let leaderDirectory = try root.open(beneath: parent, O_DIRECTORY | Beneath.pathOnly)
        _ = try sys("link", directory.path + "/" + name) { linkat(leaderDirectory.raw, leaderName, directory.raw, name, 0) }
    }

    /// Owner before mode (chown clears setuid), xattrs, then times last.
    public static func applyMetadata(_ entry: TreeEntry, to file: FileAt) throws {
        try file.changeOwner(uid: entry.uid, gid: entry.gid)
        if entry.kind != .symlink { try file.changeMode(mode_t(entry.mode)) }
        for xattr in entry.xattrs { try ExtendedAttributes.set(file.attributes, xattr) }
        try file.setTimes([entry.mtime.timespec, entry.mtime.timespec])
    }
}

extension ObjectStore {
    /// Reads a manifest, from `missingManifests` when the store lacks it.
    public func manifest(_ digest: Digest) throws -> [UInt8] {
        guard let bytes = try readIfPresent(digest) ?? missingManifests?.manifest(digest) else { throw missing(digest) }
        return bytes
    }

    /// Reads and decodes a tree manifest, from `missingManifests` when the store lacks it.
    public func tree(_ digest: Digest) throws -> Tree {
        try Tree(decoding: try manifest(digest), what: "tree \(digest)")
    }

    /// Calls `visit` for every entry below `root`, parents before children, with its path relative to
    /// the root (no leading slash).
    public func walk(_ root: Digest, prefix: String = "", _ visit: (String, TreeEntry) throws -> Void) throws {
        for entry in try tree(root).entries {
            let path = prefix.isEmpty ? entry.name : prefix + "/" + entry.name
            try visit(path, entry)
            if entry.kind == .directory { try walk(entry.digest!, prefix: path, visit) }
        }
    }
}
