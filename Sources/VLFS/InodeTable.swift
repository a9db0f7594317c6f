import CLinux
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Inode numbers for the union namespace. A number names one file while the kernel knows it: it
/// follows the file through copy-up and rename, hard links share one, and numbers are never reused,
/// so `st_ino` pairs never collide. A node lives from the kernel's first lookup to its last forget, so
/// the table holds what the kernel holds, not everything a walk ever touched; a file looked up again
/// after that gets a new number, as on any filesystem that evicts inodes without stable numbers.
///
/// The kernel knows a file by its node id: the inode number in the low 48 bits and a generation above
/// them. The generation is 0 until `renew` gives a file a fresh node id, so that the kernel makes a new
/// inode for it while open files keep the old one (which keeps answering for its path).
final class InodeTable: Sendable {
    static let rootInode: UInt64 = 1
    private static let generationShift: UInt64 = 48

    /// The `st_ino` of a node id.
    static func number(of node: UInt64) -> UInt64 { node & ((1 << generationShift) - 1) }

    /// What makes two paths one file: the private layer's inode, or a hard-link group of a shared layer.
    enum Identity: Hashable {
        case privateInode(UInt64)
        case sharedLink(layer: String, group: UInt32)
    }

    struct Node {
        var path: String
        var lookups: UInt64
    }

    /// What resolving a node's path found in a shared layer (anything but a directory), kept so that
    /// its next open or getattr resolves nothing again. It holds for the stack and the whiteouts of
    /// directories of `epoch` (`Union.current`), while the node is what its path names and nothing
    /// copies the path up or whites it out (`resolutionsChanged`).
    struct SharedResolution {
        let layer: Int
        let entry: TreeEntry
        let epoch: UInt64
    }

    private struct State {
        var nodes: [UInt64: Node] = [InodeTable.rootInode: Node(path: "", lookups: 1)]
        var byPath: [String: UInt64] = ["": InodeTable.rootInode]
        var byIdentity: [Identity: UInt64] = [:]
        /// The reverse of `byIdentity`, so that dropping a file's identities costs what it has.
        var identities: [UInt64: [Identity]] = [:]
        var next: UInt64 = 2
        /// Numbers shown in listings for names the kernel has not looked up, so that a lookup soon
        /// after gives the same number (`ls -i`, `find -inum`). Bounded: listings need no lookups.
        var provisional = BoundedCache<String, UInt64>(capacity: 1 << 14)
        /// The numbers of forgotten hard-linked files, so that their other names, looked up later, keep them.
        var provisionalIdentities = BoundedCache<Identity, UInt64>(capacity: 1 << 12)
        /// Only nodes whose path is theirs in `byPath` have one: every change that moves a node off
        /// its path drops it.
        var resolutions: [UInt64: SharedResolution] = [:]
        /// Counts `resolutionsChanged`: a resolution begun before a change is not kept.
        var resolutionChanges: UInt64 = 0

        /// The node already known for a path or identity; a stale name (its node gone) is dropped.
        mutating func known(_ path: String, _ identity: Identity?) -> UInt64? {
            if let inode = byPath[path] {
                if nodes[inode] != nil { return inode }
                byPath[path] = nil
            }
            if let identity, let inode = byIdentity[identity], nodes[inode] != nil { return inode }
            return nil
        }

        mutating func remember(_ resolution: SharedResolution, for inode: UInt64, at path: String, stamp: UInt64) {
            guard resolutionChanges == stamp, nodes[inode]?.path == path, byPath[path] == inode else { return }
            resolutions[inode] = resolution
        }

        mutating func newNumber(for path: String, _ identity: Identity?) -> UInt64 {
            if let number = provisional.value(path) {
                provisional.removeValue(forKey: path)
                if nodes[number] == nil { return number }
            }
            if let identity, let number = provisionalIdentities.value(identity) {
                provisionalIdentities.removeValue(forKey: identity)
                if nodes[number] == nil { return number }
            }
            defer { next += 1 }
            return next
        }

        /// The kernel holds the node no more: its names and identities go, and its number stays
        /// provisional for its path, since the kernel may look the path up again at once (it forgets a
        /// node whose id a revalidation found changed, then looks it up afresh).
        mutating func drop(_ inode: UInt64) {
            guard let node = nodes.removeValue(forKey: inode) else { return }
            resolutions[inode] = nil
            if byPath[node.path] == inode {
                byPath[node.path] = nil
                provisional.insert(inode, for: node.path)
            }
            for identity in identities.removeValue(forKey: inode) ?? [] where byIdentity[identity] == inode {
                byIdentity[identity] = nil
                provisionalIdentities.insert(inode, for: identity)
            }
        }
    }

    private let state = Mutex(State())

    func path(of inode: UInt64) -> String? {
        state.withLock { $0.nodes[inode]?.path }
    }

    /// A node's path, what an earlier resolution of it found if that holds for `epoch`, and the stamp
    /// under which to `remember` a new resolution.
    func path(of inode: UInt64, epoch: UInt64) -> (path: String, known: SharedResolution?, stamp: UInt64)? {
        state.withLock { state in
            guard let node = state.nodes[inode] else { return nil }
            let known = state.resolutions[inode].flatMap { $0.epoch == epoch ? $0 : nil }
            return (node.path, known, state.resolutionChanges)
        }
    }

    /// Keeps what a resolution of `path` found for its node, unless a path changed since `stamp` was
    /// taken (the resolution may have seen it before the change) or `path` is no longer the node's.
    func remember(_ resolution: SharedResolution, for inode: UInt64, at path: String, stamp: UInt64) {
        state.withLock { state in state.remember(resolution, for: inode, at: path, stamp: stamp) }
    }

    /// What these paths resolve to changed (copied up, whited out): what was kept for them goes.
    func resolutionsChanged(at paths: some Sequence<String>) {
        state.withLock { state in
            for path in paths {
                if let inode = state.byPath[path] { state.resolutions[inode] = nil }
            }
            state.resolutionChanges &+= 1
        }
    }

    /// The number to show for `path` in a listing: its node's, or a provisional one that its first
    /// lookup will take — the same for every name of a hard-linked file. Creates no node.
    func number(for path: String, identity: Identity?) -> UInt64 {
        state.withLock { state in
            if let known = state.known(path, identity) { return known }
            if let number = state.provisional.value(path) { return number }
            let number: UInt64
            if let identity, let linked = state.provisionalIdentities.value(identity), state.nodes[linked] == nil {
                number = linked
            } else {
                number = state.next
                state.next += 1
                if let identity { state.provisionalIdentities.insert(number, for: identity) }
            }
            state.provisional.insert(number, for: path)
            return number
        }
    }

    /// Counts a lookup the kernel made through a listing (readdirplus) of `node`, the number the
    /// listing showed for `path`.
    func adopt(_ node: UInt64, path: String, identity: Identity?) {
        state.withLock { state in
            state.provisional.removeValue(forKey: path)
            if state.nodes[node] == nil { state.nodes[node] = Node(path: path, lookups: 0) }
            // Another name of a hard-linked node is one of its paths too: unlinking the name the node
            // goes by then moves it here (`unlinked`) instead of leaving the kernel a node with no name.
            if state.byPath[path].map({ state.nodes[$0] == nil }) ?? true { state.byPath[path] = node }
            if let identity, state.byIdentity[identity].map({ state.nodes[$0] == nil }) ?? true {
                state.byIdentity[identity] = node
                state.identities[node, default: []].append(identity)
            }
            state.nodes[node]!.lookups += 1
        }
    }

    /// The inode for `path`, creating it if needed; counts a kernel lookup when `countLookup` (a node
    /// nobody counts is dropped when its name goes, or at the next `forget` of it). Keeps `resolution`,
    /// what resolving `path` found, as `remember` does.
    func inode(for path: String, identity: Identity?, countLookup: Bool, resolution: (SharedResolution, stamp: UInt64)? = nil) -> UInt64 {
        state.withLock { state in
            let inode: UInt64
            if let known = state.known(path, identity) {
                inode = known
            } else {
                inode = state.newNumber(for: path, identity)
                state.nodes[inode] = Node(path: path, lookups: 0)
            }
            state.byPath[path] = inode
            if let identity, state.byIdentity[identity] == nil {
                state.byIdentity[identity] = inode
                state.identities[inode, default: []].append(identity)
            }
            if countLookup { state.nodes[inode, default: Node(path: path, lookups: 0)].lookups += 1 }
            if let (resolution, stamp) = resolution { state.remember(resolution, for: inode, at: path, stamp: stamp) }
            return inode
        }
    }

    /// Makes `identity` another name for `inode` (after a copy-up gives the file a private inode).
    func alias(_ identity: Identity, to inode: UInt64) {
        state.withLock { state in
            state.byIdentity[identity] = inode
            state.identities[inode, default: []].append(identity)
        }
    }

    /// The kernel dropped `count` references; at none, the node goes. Once most nodes have gone (the
    /// kernel dropped its caches after a walk), the tables are rebuilt at their new size and the freed
    /// memory handed back to the system: dictionaries never shrink by themselves, nor does malloc's heap.
    /// Returns whether the node went.
    @discardableResult
    func forget(_ inode: UInt64, count: UInt64) -> Bool {
        var gone = false
        let compacted = state.withLock { state -> Bool in
            guard inode != InodeTable.rootInode, var node = state.nodes[inode] else { return false }
            node.lookups -= min(count, node.lookups)
            guard node.lookups == 0 else {
                state.nodes[inode] = node
                return false
            }
            state.drop(inode)
            gone = true
            guard state.nodes.capacity > 4096, state.nodes.count < state.nodes.capacity / 8 else { return false }
            state.nodes = state.nodes.compacted()
            state.resolutions = state.resolutions.compacted()
            state.byPath = state.byPath.compacted()
            state.byIdentity = state.byIdentity.compacted()
            state.identities = state.identities.compacted()
            return true
        }
        if compacted { malloc_trim(0) }
        return gone
    }

    /// Whether the kernel holds a reference to the node.
    func isHeld(_ inode: UInt64) -> Bool { state.withLock { ($0.nodes[inode]?.lookups ?? 0) > 0 } }

    /// How many nodes the table holds (for measuring the daemon's memory).
    var count: Int { state.withLock { $0.nodes.count } }

    /// A name went away (unlink, rmdir, replaced by rename): the next file there gets a new number.
    /// A hard-linked file keeps its number under another name the kernel knows, which becomes its path.
    func unlinked(_ path: String, hasOtherLinks: Bool = false) {
        state.withLock { state in
            state.provisional.removeValue(forKey: path)
            guard let inode = state.byPath.removeValue(forKey: path) else { return }
            state.resolutions[inode] = nil
            if hasOtherLinks, let other = state.byPath.first(where: { $0.value == inode })?.key {
                if state.nodes[inode]?.path == path { state.nodes[inode]?.path = other }
                return
            }
            for identity in state.identities.removeValue(forKey: inode) ?? [] where state.byIdentity[identity] == inode {
                state.byIdentity[identity] = nil
            }
            if state.nodes[inode]?.lookups == 0 { state.nodes[inode] = nil }
        }
    }

    /// Moves a path (and, for a directory, everything beneath it), keeping the inode numbers.
    func renamed(_ from: String, to: String, isDirectory: Bool = true) {
        state.withLock { state in
            if !isDirectory {
                guard let inode = state.byPath.removeValue(forKey: from) else { return }
                state.byPath[to] = inode
                state.nodes[inode]?.path = to
                state.resolutions[inode] = nil
                return
            }
            let prefix = from + "/"
            for (path, inode) in state.byPath where path == from || path.hasPrefix(prefix) {
                let moved = to + path.dropFirst(from.count)
                state.byPath.removeValue(forKey: path)
                state.byPath[moved] = inode
                state.nodes[inode]?.path = moved
                state.resolutions[inode] = nil
            }
        }
    }

    /// Swaps two paths (and their subtrees) for RENAME_EXCHANGE.
    func exchanged(_ a: String, _ b: String) {
        let temporary = "\u{0}exchange"
        renamed(a, to: temporary)
        renamed(b, to: a)
        renamed(temporary, to: b)
    }

    /// Moves every name of `node` (and its identities) to a new node id with the same inode number.
    /// Returns nil when no name leads to `node` any more (it was renewed already, or unlinked).
    func renew(_ node: UInt64) -> UInt64? {
        state.withLock { state in
            guard let old = state.nodes[node], state.byPath[old.path] == node else { return nil }
            var generation = (node >> InodeTable.generationShift) &+ 1
            var fresh: UInt64
            repeat {
                fresh = InodeTable.number(of: node) | (generation << InodeTable.generationShift)
                generation &+= 1
            } while state.nodes[fresh] != nil || fresh == node
            state.nodes[fresh] = Node(path: old.path, lookups: 0)
            state.resolutions[node] = nil
            // Hard links share the node: every name moves, or the kernel would keep finding the old one.
            for (path, inode) in state.byPath where inode == node { state.byPath[path] = fresh }
            let identities = state.identities.removeValue(forKey: node) ?? []
            for identity in identities where state.byIdentity[identity] == node { state.byIdentity[identity] = fresh }
            state.identities[fresh] = identities
            if old.lookups == 0 { state.nodes[node] = nil }
            return fresh
        }
    }

    /// Every known path and inode whose path is `path` or lies beneath it, for cache invalidation.
    func known(under path: String) -> [(path: String, inode: UInt64)] {
        state.withLock { state in
            let prefix = path.isEmpty ? "" : path + "/"
            return state.byPath.filter { $0.key == path || $0.key.hasPrefix(prefix) }.map { ($0.key, $0.value) }
        }
    }

    func inode(at path: String) -> UInt64? {
        state.withLock { $0.byPath[path] }
    }
}

extension Dictionary {
    /// The same entries in storage sized for them.
    func compacted() -> Dictionary {
        var copy = Dictionary(minimumCapacity: count)
        for (key, value) in self { copy[key] = value }
        return copy
    }
}
