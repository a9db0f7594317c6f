import CFuse3
import CLinux
import Foundation
import Synchronization
import VLFS
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// Directories: opened by the kernel itself where it can, listed by cookie (`readDirectory`), synced on fsyncdir.
    static func setDirectories(_ ops: inout fuse_lowlevel_ops) {
        ops.opendir = { request, _, info in
            // Listings change only through this daemon: the kernel may keep them until told. Where the
            // kernel can open directories by itself (and then caches the same way), it is told so.
            if FuseMount.mount(request, counting: .opendir).opensDirectoriesItself.load(ordering: .relaxed) {
                fuse_reply_err(request, ENOSYS)
                return
            }
            info!.pointee.cache_readdir = 1
            info!.pointee.keep_cache = 1
            fuse_reply_open(request, info)
        }
        ops.readdir = { request, inode, size, offset, info in
            FuseMount.readDirectory(request, inode: inode, size: size, offset: offset, info: info, plus: false)
        }
        ops.readdirplus = { request, inode, size, offset, info in
            FuseMount.readDirectory(request, inode: inode, size: size, offset: offset, info: info, plus: true)
        }
        ops.fsyncdir = { request, inode, _, _ in
            FuseMount.reply(request, .fsyncdir) { mount in
                try mount.union.syncDirectory(UInt64(inode))
                fuse_reply_err(request, 0)
            }
        }
    }

    /// Answers readdir and readdirplus from the directory's listing, from the first entry whose cookie
    /// follows `offset` ("." and ".." are 1 and 2). readdirplus counts a lookup only for the entries that fit.
    static func readDirectory(_ request: fuse_req_t?, inode: fuse_ino_t, size: Int, offset: off_t, info: UnsafeMutablePointer<fuse_file_info>?, plus: Bool) {
        reply(request, plus ? .readdirplus : .readdir) { mount in
            let directory = UInt64(inode)
            let listing: DirectoryListings.Listing
            if offset != 0, let taken = mount.listings.withLock({ $0.listing(directory, withAttributes: plus) }) {
                listing = taken
            } else {
                listing = DirectoryListings.Listing(try mount.union.list(directory, withAttributes: plus), withAttributes: plus)
                mount.listings.withLock { $0.keep(listing, for: directory) }
            }
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            var position = offset < 2 ? Int(offset) - 2 : listing.firstIndex(after: UInt64(offset))
            while position < listing.entries.count {
                let name: String
                var attributes = stat()
                var entry: Union.Entry?
                let cookie: UInt64
                if position < 0 {
                    name = position == -2 ? "." : ".."
                    attributes.st_ino = position == -2 ? UInt(Union.inodeNumber(ofNode: UInt64(inode))) : 1
                    attributes.st_mode = S_IFDIR
                    cookie = UInt64(position + 3)
                } else {
                    let item = listing.entries[position]
                    name = item.name
                    cookie = listing.cookies[position]
                    if plus, let itemAttributes = item.attributes {
                        entry = Union.Entry(inode: item.inode, attributes: itemAttributes)
                        attributes = itemAttributes
                    } else {
                        attributes.st_ino = UInt(Union.inodeNumber(ofNode: item.inode))
                        attributes.st_mode = item.type
                    }
                }
                let remaining = size - used
                let needed = buffer.withUnsafeMutableBufferPointer { raw -> Int in
                    let start = raw.baseAddress! + used
                    if plus {
                        var parameter = entry.map(entryParameter) ?? fuse_entry_param(ino: 0, generation: 0, attr: attributes, attr_timeout: 0, entry_timeout: 0)
                        return fuse_add_direntry_plus(request, start, remaining, name, &parameter, off_t(cookie))
                    }
                    return fuse_add_direntry(request, start, remaining, name, &attributes, off_t(cookie))
                }
                if needed > remaining { break }
                if entry != nil { try mount.union.adopt(listing.entries[position], in: directory) }
                used += needed
                position += 1
            }
            if position == listing.entries.count { mount.listings.withLock { $0.finished(directory) } }
            fuse_reply_buf(request, buffer, used)
        }
    }
}

/// The listings readers are going through (see `FuseMount.listings`).
struct DirectoryListings {
    struct Listing {
        let entries: [Union.DirectoryEntry]
        /// Each entry's offset: a hash of its name above the offsets of "." and "..", ascending.
        let cookies: [UInt64]
        let withAttributes: Bool

        init(_ entries: [Union.DirectoryEntry], withAttributes: Bool) {
            let keyed = entries.map { (Listing.cookie($0.name), $0) }.sorted { $0.0 < $1.0 }
            self.entries = keyed.map(\.1)
            cookies = keyed.map(\.0)
            self.withAttributes = withAttributes
        }

        /// A stable 62-bit hash (within this process) moved above 2; off_t must stay positive.
        static func cookie(_ name: String) -> UInt64 {
            var hasher = Hasher()
            hasher.combine(name)
            return (UInt64(bitPattern: Int64(hasher.finalize())) >> 2) + 3
        }

        /// Where a reader whose last entry had `cookie` goes on.
        func firstIndex(after cookie: UInt64) -> Int {
            var low = 0, high = cookies.count
            while low < high {
                let middle = (low + high) / 2
                if cookies[middle] <= cookie { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }

    private var listings = BoundedCache<UInt64, Listing>(capacity: 16)

    mutating func listing(_ directory: UInt64, withAttributes: Bool) -> Listing? {
        guard let listing = listings.value(directory), listing.withAttributes || !withAttributes else { return nil }
        return listing
    }

    mutating func keep(_ listing: Listing, for directory: UInt64) { listings.insert(listing, for: directory) }

    mutating func finished(_ directory: UInt64) { listings.removeValue(forKey: directory) }
}
