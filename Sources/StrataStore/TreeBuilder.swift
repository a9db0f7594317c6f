/// A directory tree assembled in memory from any source (a directory on disk, a tarball, a `.deb`),
/// then stored as a Merkle tree of manifests, deepest directories first.
public final class TreeBuilder {
    final class Node {
        var entry: TreeEntry
        var children: [String: Node] = [:]
        /// Nonzero for members of a hard-link set: nodes with one key share one inode.
        var linkKey = 0

        init(entry: TreeEntry) { self.entry = entry }
    }

    let root: Node
    /// Names used in error messages, such as the archive being read.
    let source: String
    private var nextLinkKey = 1

    public init(source: String, root: TreeEntry = TreeEntry(name: ".", kind: .directory, mode: 0o755)) {
        self.source = source
        var rootEntry = root
        rootEntry.name = "."
        self.root = Node(entry: rootEntry)
    }

    /// Splits a path from an archive or the command line into safe components: refuses absolute paths
    /// and `..`, drops `.` and empty components.
    public static func components(of path: String, in source: String) throws -> [String] {
        if path.hasPrefix("/") { throw StoreError("\(source): absolute path '\(path)' would write outside the layer") }
        var result: [String] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." { throw StoreError("\(source): path '\(path)' has a '..' component that would write outside the layer") }
            result.append(String(component))
        }
        return result
    }

    /// Adds or replaces the entry at `path`. Parent directories missing from the source are made with
    /// mode 0755, owned by root; a parent that exists as anything but a directory is an error (the
    /// classic archive attack of a symlink followed by a file beneath it).
    @discardableResult
    func insert(_ entry: TreeEntry, at path: [String]) throws -> Node {
        guard let name = path.last else {
            guard entry.kind == .directory else { throw StoreError("\(source): the root must be a directory") }
            let digestless = root.entry.digest
            root.entry = entry
            root.entry.name = "."
            root.entry.digest = digestless
            return root
        }
        let parent = try directory(at: path.dropLast(), creating: true, for: path)
        var stored = entry
        stored.name = name
        if let existing = parent.children[name] {
            if existing.entry.kind == .directory && entry.kind == .directory {
                let digestless = existing.entry.digest
                existing.entry = stored
                existing.entry.digest = digestless
                return existing
            }
            if existing.entry.kind == .directory {
                throw StoreError("\(source): '\(path.joined(separator: "/"))' is a directory and a \(entry.kind)")
            }
        }
        let node = Node(entry: stored)
        parent.children[name] = node
        return node
    }

    /// Adds an entry (its name is taken from the path).
    public func add(_ entry: TreeEntry, at path: [String]) throws {
        try insert(entry, at: path)
    }

    /// Removes the entry at `path` and everything beneath it, if there is one.
    public func remove(at path: [String]) throws {
        guard let name = path.last, let parent = try lookup(Array(path.dropLast())), parent.entry.kind == .directory else { return }
        parent.children[name] = nil
    }

    /// Marks the directory at `path` with an extended attribute; false if no directory is there.
    @discardableResult
    public func setAttribute(_ attribute: ExtendedAttribute, onDirectoryAt path: [String]) throws -> Bool {
        guard let node = try lookup(path), node.entry.kind == .directory else { return false }
        node.entry.xattrs = (node.entry.xattrs.filter { $0.name != attribute.name } + [attribute]).sorted { $0.name < $1.name }
        return true
    }

    /// Whether the builder holds an entry at `path`.
    public func contains(_ path: [String]) throws -> Bool { try lookup(path) != nil }

    /// Adds a regular file with the given contents, stored into `batch`.
    public func addFile(at path: [String], contents: [UInt8], mode: UInt32, into batch: ObjectStore.Batch) throws {
        let digest = try batch.put(contents)
        try insert(TreeEntry(name: path.last ?? "", kind: .regular, mode: mode, size: UInt64(contents.count), digest: digest), at: path)
    }

    /// Adds a hard link at `path` to the existing non-directory at `target`.
    public func link(_ path: [String], to target: [String]) throws {
        guard let existing = try lookup(target), existing.entry.kind != .directory else {
            throw StoreError("\(source): hard link '\(path.joined(separator: "/"))' points to '\(target.joined(separator: "/"))', which is not a file earlier in the archive")
        }
        if existing.linkKey == 0 {
            existing.linkKey = nextLinkKey
            nextLinkKey += 1
        }
        let node = try insert(existing.entry, at: path)
        node.linkKey = existing.linkKey
    }

    func lookup(_ path: [String]) throws -> Node? {
        var node = root
        for component in path {
            guard let child = node.children[component] else { return nil }
            node = child
        }
        return node
    }

    /// The directory at `path`, made where missing; `member` (what is being inserted) names the error.
    private func directory(at path: ArraySlice<String>, creating: Bool, for member: [String]) throws -> Node {
        var node = root
        for (index, component) in path.enumerated() {
            if let child = node.children[component] {
                guard child.entry.kind == .directory else {
                    let prefix = path.prefix(index + 1).joined(separator: "/")
                    throw StoreError("\(source): '\(member.joined(separator: "/"))' lies beneath '\(prefix)', which is a \(child.entry.kind), not a directory")
                }
                node = child
            } else {
                let child = Node(entry: TreeEntry(name: component, kind: .directory, mode: 0o755))
                node.children[component] = child
                node = child
            }
        }
        return node
    }

    /// Stores every directory's manifest into `batch` and returns the root entry, whose digest names
    /// the whole tree. Hard-link groups are numbered in canonical (sorted depth-first) order, and only
    /// sets with two or more members inside this tree form a group.
    public func store(into batch: ObjectStore.Batch) throws -> TreeEntry {
        var memberCounts: [Int: Int] = [:]
        countLinks(root, into: &memberCounts)
        var groups: [Int: UInt32] = [:]
        let digest = try store(root, batch: batch, memberCounts: memberCounts, groups: &groups)
        var entry = root.entry
        entry.digest = digest
        return entry
    }

    private func countLinks(_ node: Node, into counts: inout [Int: Int]) {
        if node.linkKey != 0 { counts[node.linkKey, default: 0] += 1 }
        for child in node.children.values { countLinks(child, into: &counts) }
    }

    private func store(_ node: Node, batch: ObjectStore.Batch, memberCounts: [Int: Int], groups: inout [Int: UInt32]) throws -> Digest {
        let names = node.children.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var entries: [TreeEntry] = []
        entries.reserveCapacity(names.count)
        for name in names {
            let child = node.children[name]!
            var entry = child.entry
            if entry.kind == .directory {
                entry.digest = try store(child, batch: batch, memberCounts: memberCounts, groups: &groups)
            } else if child.linkKey != 0, memberCounts[child.linkKey, default: 0] > 1 {
                if let group = groups[child.linkKey] {
                    entry.linkGroup = group
                } else {
                    entry.linkGroup = UInt32(groups.count + 1)
                    groups[child.linkKey] = entry.linkGroup
                }
            } else {
                entry.linkGroup = 0
            }
            entries.append(entry)
        }
        return try batch.put(Tree(entries: entries).encoded())
    }
}
