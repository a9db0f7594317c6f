/// Differences between two trees, found in time proportional to the difference: subtrees whose
/// digests match are skipped without being read.
public enum TreeDiff {
    public enum Change: Sendable, Equatable {
        case added(TreeEntry)
        case deleted(TreeEntry)
        /// Content or type changed.
        case modified(old: TreeEntry, new: TreeEntry)
        /// Same content and type; mode, owner, times or xattrs changed.
        case metadata(old: TreeEntry, new: TreeEntry)
    }

    /// Calls `report` for every changed path (relative, no leading slash). An added or deleted
    /// directory is reported once, not entry by entry, unless `expandDirectories`.
    public static func compare(_ old: Digest?, _ new: Digest?, oldStore: ObjectStore, newStore: ObjectStore, prefix: String = "",
                               expandDirectories: Bool = false, _ report: (String, Change) throws -> Void) throws {
        if old == new { return }
        let oldEntries = try old.map { try oldStore.tree($0).entries } ?? []
        let newEntries = try new.map { try newStore.tree($0).entries } ?? []
        var i = 0
        var j = 0
        while i < oldEntries.count || j < newEntries.count {
            let a = i < oldEntries.count ? oldEntries[i] : nil
            let b = j < newEntries.count ? newEntries[j] : nil
            let order: Int
            if let a, let b {
                order = a.name == b.name ? 0 : (a.name.utf8.lexicographicallyPrecedes(b.name.utf8) ? -1 : 1)
            } else {
                order = a == nil ? 1 : -1
            }
            let path = { (name: String) in prefix.isEmpty ? name : prefix + "/" + name }
            if order < 0, let a {
                try report(path(a.name), .deleted(a))
                if expandDirectories && a.kind == .directory {
                    try compare(a.digest, nil, oldStore: oldStore, newStore: newStore, prefix: path(a.name), expandDirectories: true, report)
                }
                i += 1
            } else if order > 0, let b {
                try report(path(b.name), .added(b))
                if expandDirectories && b.kind == .directory {
                    try compare(nil, b.digest, oldStore: oldStore, newStore: newStore, prefix: path(b.name), expandDirectories: true, report)
                }
                j += 1
            } else if let a, let b {
                if a != b {
                    if a.kind == .directory && b.kind == .directory {
                        if !a.sameMetadata(ignoringDigestOf: b) { try report(path(a.name), .metadata(old: a, new: b)) }
                        try compare(a.digest, b.digest, oldStore: oldStore, newStore: newStore, prefix: path(a.name),
                                    expandDirectories: expandDirectories, report)
                    } else if a.kind == b.kind && a.digest == b.digest && a.target == b.target && a.device == b.device && a.size == b.size {
                        try report(path(a.name), .metadata(old: a, new: b))
                    } else {
                        try report(path(a.name), .modified(old: a, new: b))
                    }
                }
                i += 1
                j += 1
            }
        }
    }
}

extension TreeEntry {
    /// Same attributes apart from the content digest (for directories, whose digest covers children).
    public func sameMetadata(ignoringDigestOf other: TreeEntry) -> Bool {
        var copy = other
        copy.digest = digest
        copy.name = name
        return self == copy
    }
}
