#if canImport(Glibc)
import Glibc
#endif

public enum EntryKind: UInt8, Sendable, CustomStringConvertible {
    case regular = 1, directory, symlink, characterDevice, blockDevice, fifo, socket

    /// The `S_IFMT` bits of this kind.
    public var fileTypeBits: UInt32 {
        switch self {
        case .regular: UInt32(S_IFREG)
        case .directory: UInt32(S_IFDIR)
        case .symlink: UInt32(S_IFLNK)
        case .characterDevice: UInt32(S_IFCHR)
        case .blockDevice: UInt32(S_IFBLK)
        case .fifo: UInt32(S_IFIFO)
        case .socket: UInt32(S_IFSOCK)
        }
    }

    public init?(fileTypeBits: UInt32) {
        switch fileTypeBits & UInt32(S_IFMT) {
        case UInt32(S_IFREG): self = .regular
        case UInt32(S_IFDIR): self = .directory
        case UInt32(S_IFLNK): self = .symlink
        case UInt32(S_IFCHR): self = .characterDevice
        case UInt32(S_IFBLK): self = .blockDevice
        case UInt32(S_IFIFO): self = .fifo
        case UInt32(S_IFSOCK): self = .socket
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .regular: "file"
        case .directory: "directory"
        case .symlink: "symlink"
        case .characterDevice: "char-device"
        case .blockDevice: "block-device"
        case .fifo: "fifo"
        case .socket: "socket"
        }
    }
}

public struct Timestamp: Hashable, Comparable, Sendable {
    public var seconds: Int64
    public var nanoseconds: UInt32

    public init(seconds: Int64, nanoseconds: UInt32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public init(_ spec: timespec) {
        self.init(seconds: Int64(spec.tv_sec), nanoseconds: UInt32(spec.tv_nsec))
    }

    public var timespec: timespec { Glibc.timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds)) }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds) }
}

public struct ExtendedAttribute: Hashable, Sendable {
    public var name: String
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }
}

/// One name in a directory, with everything needed to recreate it exactly.
public struct TreeEntry: Hashable, Sendable {
    public var name: String
    public var kind: EntryKind
    /// Permission bits including setuid, setgid and sticky (`07777`).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var mtime: Timestamp
    /// Content size of a regular file; 0 otherwise.
    public var size: UInt64
    /// The blob of a regular file, or the tree manifest of a directory.
    public var digest: Digest?
    /// Target of a symlink.
    public var target: String?
    /// Device number of a character or block device.
    public var device: UInt64
    /// Entries of one tree that share a nonzero group are hard links to one inode.
    public var linkGroup: UInt32
    /// Sorted by name.
    public var xattrs: [ExtendedAttribute]

    public init(name: String, kind: EntryKind, mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0, mtime: Timestamp = Timestamp(seconds: 0),
                size: UInt64 = 0, digest: Digest? = nil, target: String? = nil, device: UInt64 = 0, linkGroup: UInt32 = 0,
                xattrs: [ExtendedAttribute] = []) {
        self.name = name
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.size = size
        self.digest = digest
        self.target = target
        self.device = device
        self.linkGroup = linkGroup
        self.xattrs = xattrs.sorted { $0.name < $1.name }
    }

    /// `st_mode`: file type and permission bits.
    public var statMode: UInt32 { kind.fileTypeBits | mode }

    /// Same inode metadata and content, ignoring the name (what hard-link members share).
    public func sameMetadata(as other: TreeEntry) -> Bool {
        kind == other.kind && mode == other.mode && uid == other.uid && gid == other.gid && mtime == other.mtime
            && size == other.size && digest == other.digest && target == other.target && device == other.device
            && xattrs == other.xattrs
    }
}

/// One directory's manifest: its entries sorted by name (byte order), encoded canonically so the same
/// directory always yields the same bytes and therefore the same digest.
public struct Tree: Hashable, Sendable {
    public private(set) var entries: [TreeEntry]

    public init(entries: [TreeEntry]) {
        self.entries = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// Binary search by name.
    public func entry(named name: String) -> TreeEntry? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            let candidate = entries[mid].name
            if candidate == name { return entries[mid] }
            if candidate.utf8.lexicographicallyPrecedes(name.utf8) { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter()
        writer.bytes.reserveCapacity(16 + entries.count * 80)
        ManifestHeader.write(.tree, into: &writer)
        writer.varint(entries.count)
        for entry in entries { entry.write(into: &writer) }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8], what: String = "tree") throws {
        self = try bytes.withUnsafeBytes { try Tree(decoding: $0, what: what) }
    }

    public init(decoding raw: UnsafeRawBufferPointer, what: String) throws {
        var reader = BinaryReader(raw, what: what)
        try ManifestHeader.read(.tree, from: &reader)
        let count = Int(try reader.varint())
        guard count <= raw.count else { throw reader.corrupt("entry count \(count) too large") }
        var entries: [TreeEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let entry = try TreeEntry(reading: &reader)
            let name = entry.name
            if let previous = entries.last, !previous.name.utf8.lexicographicallyPrecedes(name.utf8) { throw reader.corrupt("entries out of order") }
            guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(UInt8(ascii: "/")), !name.utf8.contains(0) else {
                throw reader.corrupt("invalid entry name '\(name)'")
            }
            entries.append(entry)
        }
        guard reader.atEnd else { throw reader.corrupt("trailing bytes") }
        self.entries = entries
    }
}

extension TreeEntry {
    func write(into writer: inout BinaryWriter) {
        writer.string(name)
        writer.byte(kind.rawValue)
        writer.varint(mode)
        writer.varint(uid)
        writer.varint(gid)
        writer.signed(mtime.seconds)
        writer.varint(mtime.nanoseconds)
        switch kind {
        case .directory:
            writer.digest(digest!)
        case .regular:
            writer.varint(size)
            writer.digest(digest!)
        case .symlink:
            writer.string(target ?? "")
        case .characterDevice, .blockDevice:
            writer.varint(device)
        case .fifo, .socket:
            break
        }
        if kind != .directory { writer.varint(linkGroup) }
        writer.varint(xattrs.count)
        for xattr in xattrs {
            writer.string(xattr.name)
            writer.data(xattr.value)
        }
    }

    init(reading reader: inout BinaryReader) throws {
        let name = try reader.string()
        guard let kind = EntryKind(rawValue: try reader.byte()) else { throw reader.corrupt("unknown entry kind") }
        self.init(name: name, kind: kind, mode: try reader.uint32(), uid: try reader.uint32(), gid: try reader.uint32(),
                  mtime: Timestamp(seconds: try reader.signed(), nanoseconds: try reader.uint32()))
        switch kind {
        case .directory:
            digest = try reader.digest()
        case .regular:
            size = try reader.varint()
            digest = try reader.digest()
        case .symlink:
            target = try reader.string()
        case .characterDevice, .blockDevice:
            device = try reader.varint()
        case .fifo, .socket:
            break
        }
        if kind != .directory { linkGroup = try reader.uint32() }
        let xattrCount = Int(try reader.varint())
        if xattrCount > 0 {
            var xattrs: [ExtendedAttribute] = []
            for _ in 0..<xattrCount {
                let xattr = ExtendedAttribute(name: try reader.string(), value: Array(try reader.bytes()))
                if let last = xattrs.last, last.name >= xattr.name { throw reader.corrupt("extended attributes out of order") }
                xattrs.append(xattr)
            }
            self.xattrs = xattrs
        }
    }
}
