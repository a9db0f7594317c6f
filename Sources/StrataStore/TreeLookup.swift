/// Finds entries by path in stored trees, decoding each directory once.
public struct TreeLookup {
    public let store: ObjectStore
    private var trees: [Digest: Tree] = [:]

    public init(store: ObjectStore) { self.store = store }

    public mutating func tree(_ digest: Digest) throws -> Tree {
        if let tree = trees[digest] { return tree }
        let tree = try store.tree(digest)
        trees[digest] = tree
        return tree
    }

    /// The entry at `path` (relative, '/'-separated; "" is the root itself) below `root`, or nil.
    public mutating func entry(at path: String, under root: TreeEntry) throws -> TreeEntry? {
        var current = root
        for component in path.split(separator: "/") {
            guard current.kind == .directory, let next = try tree(current.digest!).entry(named: String(component)) else { return nil }
            current = next
        }
        return current
    }
}
