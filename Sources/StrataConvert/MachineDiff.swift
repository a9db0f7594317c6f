import StrataStore
import VLFS

/// What separates a composition from a machine's tree (VM2Docker's diff layer, section 4.3.3), and the
/// configuration layer that closes the gap: files no layer provides or provides otherwise (content,
/// type, owner, mode, times, xattrs) as the machine has them, and what the machine deleted as 0:0
/// character devices (overlayfs whiteouts, as `ConfigLayer` writes them). Paths the exclusions name are
/// counted, never carried. Directory times are not compared: unpacking any package into a directory
/// changes its time, so no two installs agree on them.
public struct MachineDiff {
    public struct Counts: Sendable, Equatable {
        /// Every path of the machine, and every path only the composition has.
        public var compared = 0
        public var identical = 0
        public var excluded = 0
        public var different = 0
    }

    public private(set) var counts = Counts()
    /// The differing paths (relative), in tree order, with what differs.
    public private(set) var differences: [(path: String, change: TreeDiff.Change)] = []

    /// Compares `composed` (in `composedStore`) with the machine's tree.
    public init(composed: TreeEntry, composedStore: ObjectStore, machine: MachineTree, exclusions: Exclusions) throws {
        var machinePaths = 0
        var excludedMachinePaths = 0
        try machine.store.walk(machine.root.digest!) { path, _ in
            machinePaths += 1
            if exclusions.excludes(path) { excludedMachinePaths += 1 }
        }
        var composedOnly = 0
        var excludedComposedOnly = 0
        var deletedDirectories: [String] = []
        try TreeDiff.compare(composed.digest, machine.root.digest, oldStore: composedStore, newStore: machine.store, expandDirectories: true) { path, change in
            if case .deleted = change {
                composedOnly += 1
                if exclusions.excludes(path) { excludedComposedOnly += 1; return }
                // Beneath a directory the machine lacks, only that directory is a difference.
                if deletedDirectories.contains(where: { path.hasPrefix($0 + "/") }) { return }
                if case .deleted(let entry) = change, entry.kind == .directory { deletedDirectories.append(path) }
            } else if exclusions.excludes(path) {
                return
            }
            if case .metadata(let old, let new) = change {
                // Hard-link groups are numbered per tree (a composition numbers none across layers).
                var compared = new
                compared.linkGroup = old.linkGroup
                if old.kind == .directory { compared.mtime = old.mtime }
                if old.sameMetadata(ignoringDigestOf: compared) { return }
            }
            differences.append((path, change))
        }
        counts.compared = machinePaths + composedOnly
        counts.excluded = excludedMachinePaths + excludedComposedOnly
        counts.different = differences.count
        counts.identical = counts.compared - counts.excluded - counts.different
    }

    /// The configuration layer's tree: each difference as the machine has it, with the machine's
    /// directories above it; file contents copied from the machine's scratch store into `batch`.
    public func configurationTree(machine: inout MachineTree, into batch: ObjectStore.Batch) throws -> TreeEntry {
        let builder = TreeBuilder(source: "the configuration of \(machine.source)")
        var links: [UInt32: [String]] = [:]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        func parents(of parts: [String]) throws {
            for depth in 1..<max(parts.count, 1) where try !builder.contains(Array(parts.prefix(depth))) {
                let path = parts.prefix(depth).joined(separator: "/")
                guard var directory = try machine.entry(path), directory.kind == .directory else {
                    throw StoreError("\(machine.source): /\(path) is not a directory on the machine")
                }
                directory.digest = nil
                try builder.add(directory, at: Array(parts.prefix(depth)))
            }
        }
        for (path, change) in differences {
            let parts = path.split(separator: "/").map(String.init)
            try parents(of: parts)
            switch change {
            case .deleted:
                try builder.add(TreeEntry(name: "", kind: .characterDevice, mode: 0), at: parts)
            case .added(var entry), .modified(_, var entry), .metadata(_, var entry):
                if entry.kind == .directory {
                    entry.digest = nil
                    try builder.add(entry, at: parts)
                    // A directory where the layers have something else: nothing of theirs shows in it.
                    if case .modified = change { try builder.setAttribute(SharedLayer.opaqueAttribute, onDirectoryAt: parts) }
                    continue
                }
                if entry.kind == .regular, let digest = entry.digest {
                    let file = try machine.store.open(digest)
                    let (copied, _) = try batch.putFile(file, buffer: buffer)
                    guard copied == digest else { throw StoreError("\(machine.source): /\(path) changed in the scratch store") }
                }
                if entry.linkGroup != 0, let first = links[entry.linkGroup] {
                    try builder.link(parts, to: first)
                } else {
                    if entry.linkGroup != 0 { links[entry.linkGroup] = parts }
                    try builder.add(entry, at: parts)
                }
            }
        }
        return try builder.store(into: batch)
    }
}
