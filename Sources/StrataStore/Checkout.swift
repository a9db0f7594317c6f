import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a stored tree out to a directory so that it is identical to its source in content and
/// metadata: type, mode (setuid included), owner, nanosecond mtimes, xattrs, device numbers and hard links.
public struct Checkout {
    let store: ObjectStore
    /// First path checked out for each hard-link group, to link the rest to.
    private var linkLeaders: [UInt32: String] = [:]
    private let buffer: UnsafeMutableRawBufferPointer

    public static func run(_ root: TreeEntry, from store: ObjectStore, to destination: String) throws {
        var checkout = Checkout(store: store)
        defer { checkout.buffer.deallocate() }
        try checkout.directory(root, at: destination, isRoot: true)
    }

    /// Creates one entry at `path` with its metadata: a directory empty, a file with its content from
    /// `store`. For writing a few changed entries into an existing checkout (applying a delta).
    public static func place(_ entry: TreeEntry, from store: ObjectStore, at path: String) throws {
        guard entry.kind == .directory else {
            let checkout = Checkout(store: store)
            defer { checkout.buffer.deallocate() }
            return try checkout.node(entry, at: path)
        }
        _ = try sys("mkdir", path) { mkdir(path, 0o700) }
        try applyMetadata(entry, at: path)
    }

    private init(store: ObjectStore) {
        self.store = store
        buffer = .allocate(byteCount: 1 << 20, alignment: 4096)
    }

    private mutating func directory(_ entry: TreeEntry, at path: String, isRoot: Bool = false) throws {
        if mkdir(path, 0o700) != 0 {
            guard isRoot, errno == EEXIST, try FileManager.default.contentsOfDirectory(atPath: path).isEmpty else {
                throw errno == EEXIST && isRoot ? StoreError("\(path): checkout needs a new or empty directory") : SystemError("mkdir", path)
            }
        }
        for child in try store.tree(entry.digest!).entries {
            let childPath = path + "/" + child.name
            if child.kind == .directory {
                try directory(child, at: childPath)
                continue
            }
            if child.linkGroup != 0 {
                if let leader = linkLeaders[child.linkGroup] {
                    _ = try sys("link", childPath) { link(leader, childPath) }
                    continue
                }
                linkLeaders[child.linkGroup] = childPath
            }
            try node(child, at: childPath)
        }
        try Checkout.applyMetadata(entry, at: path)
    }

    private func node(_ entry: TreeEntry, at path: String) throws {
        switch entry.kind {
        case .regular:
            let source = try store.open(entry.digest!)
            let destination = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
            try copyContents(from: source, to: destination, size: entry.size)
        case .symlink:
            _ = try sys("symlink", path) { symlink(entry.target ?? "", path) }
        case .characterDevice, .blockDevice, .fifo, .socket:
            _ = try sys("mknod", path) { mknod(path, mode_t(entry.kind.fileTypeBits | 0o600), dev_t(entry.device)) }
        case .directory:
            preconditionFailure("directories are checked out by directory(_:at:)")
        }
        try Checkout.applyMetadata(entry, at: path)
    }

    /// Copies in the kernel where it can (`copy_file_range`, which reflinks on filesystems that can).
    private func copyContents(from source: borrowing FileDescriptor, to destination: borrowing FileDescriptor, size: UInt64) throws {
        var remaining = Int(size)
        while remaining > 0 {
            let copied = copy_file_range(source.raw, nil, destination.raw, nil, remaining, 0)
            if copied > 0 {
                remaining -= copied
                continue
            }
            if copied == 0 { throw StoreError("\(source.path): object shorter than its manifest says") }
            if errno == EINTR { continue }
            guard errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP else { throw SystemError("copy_file_range", destination.path) }
            while true {
                let n = try source.read(into: buffer)
                if n == 0 { break }
                try destination.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
            return
        }
    }

    /// Owner before mode (chown clears setuid), xattrs, then times last.
    public static func applyMetadata(_ entry: TreeEntry, at path: String) throws {
        _ = try sys("lchown", path) { lchown(path, entry.uid, entry.gid) }
        if entry.kind != .symlink {
            _ = try sys("chmod", path) { chmod(path, mode_t(entry.mode)) }
        }
        for xattr in entry.xattrs { try ExtendedAttributes.set(path, xattr) }
        let times = [entry.mtime.timespec, entry.mtime.timespec]
        _ = try sys("utimensat", path) { utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) }
    }
}

extension ObjectStore {
    /// Reads and decodes a tree manifest.
    public func tree(_ digest: Digest) throws -> Tree {
        let bytes = try read(digest)
        return try Tree(decoding: bytes, what: "tree \(digest)")
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
