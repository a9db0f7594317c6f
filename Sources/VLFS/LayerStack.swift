import Foundation
import StrataLayers
import StrataStore

/// The read-only part of a VLFS, top to bottom: the generated dpkg database, configuration layers, then software layers, each
/// paired with its whiteout set. A stack is immutable; a live update builds a new one and swaps it in.
public struct LayerStack: Sendable {
    public let layers: [SharedLayer]
    public let whiteouts: [WhiteoutSet]

    /// Orders the layers (configuration above software; a layer that `Replaces` another above it) and
    /// refuses software layers whose files overlap without being identical or replaced.
    public init(layers: [SharedLayer], whiteoutDirectory: String) throws {
        let generated = layers.filter { $0.kind == .generated }
        let config = layers.filter { $0.kind == .config }
        let software = try LayerStack.orderByReplaces(layers.filter { $0.kind == .software })
        try OverlapCheck.check(software)
        self.layers = generated + config + software
        try makeDirectories(whiteoutDirectory)
        whiteouts = try self.layers.map { try WhiteoutSet(file: "\(whiteoutDirectory)/\($0.whiteoutKey)") }
    }

    /// True when `upper` declares `Replaces` on `lower`'s name, at `lower`'s version.
    static func replaces(_ upper: SharedLayer, _ lower: SharedLayer) -> Bool {
        upper.metadata.replaces.contains { relation in
            relation.name == lower.name && (relation.constraint?.isSatisfied(by: lower.metadata.version) ?? true)
        }
    }

    /// A stable topological order in which every replacing layer stands above what it replaces.
    static func orderByReplaces(_ layers: [SharedLayer]) throws -> [SharedLayer] {
        var remaining = layers.sorted { $0.name < $1.name }
        var ordered: [SharedLayer] = []
        while !remaining.isEmpty {
            // A layer can go next when nothing left replaces it.
            guard let index = remaining.firstIndex(where: { candidate in !remaining.contains { replaces($0, candidate) && $0.name != candidate.name } }) else {
                throw LayerError("layers replace each other in a cycle: \(remaining.map(\.label).joined(separator: ", "))")
            }
            ordered.append(remaining.remove(at: index))
        }
        return ordered
    }
}

/// Software layers may not overlap (DESIGN §4), except where the overlapping files are identical or
/// one layer replaces the other.
///
/// When every layer has a path list (one object each, named in its repository's index), the check
/// runs on those; the trees are read only to confirm and name an overlap the lists suggest, or when a
/// list is missing. On the trees, only directories that two layers provide can hold an overlap, and
/// none below a directory whose providers all have the same tree: the check descends into those
/// alone, a level at a time (for a layer of a served repository, each level's missing trees are
/// fetched together).
enum OverlapCheck {
    /// A directory path and the layers that provide it, by index, with their trees there.
    private struct SharedDirectory {
        let path: String
        let providers: [(layer: Int, tree: Digest)]
    }

    static func check(_ layers: [SharedLayer]) throws {
        // One layer cannot overlap anything (an image mount has a single layer of 10⁵ files).
        guard layers.count > 1 else { return }
        if let lists = pathLists(layers), !mayOverlap(layers, lists) { return }
        try checkTrees(layers)
    }

    /// Each layer's path list, or nil when a layer has none or it cannot be read (the trees decide then).
    private static func pathLists(_ layers: [SharedLayer]) -> [PathList]? {
        let digests = layers.enumerated().compactMap { index, layer in layer.paths.map { (index, $0) } }
        guard digests.count == layers.count else { return nil }
        prefetch(digests, layers)
        return try? layers.map { try PathList(decoding: try $0.store.manifest($0.paths!), what: "path list of layer \($0.label)") }
    }

    /// Whether some path is provided by two layers that neither agree there nor replace one another.
    private static func mayOverlap(_ layers: [SharedLayer], _ lists: [PathList]) -> Bool {
        var first: [UInt64: (layer: Int, content: UInt64)] = [:]
        first.reserveCapacity(lists.reduce(0) { $0 + $1.entries.count })
        for (index, list) in lists.enumerated() {
            for entry in list.entries {
                guard let existing = first[entry.path] else {
                    first[entry.path] = (index, entry.content)
                    continue
                }
                // Equal content hashes: identical entries, or two directories (both hash to 0).
                if existing.content == entry.content { continue }
                let (upper, lower) = (layers[existing.layer], layers[index])
                if LayerStack.replaces(upper, lower) || LayerStack.replaces(lower, upper) { continue }
                return true
            }
        }
        return false
    }

    /// The check on the layers' trees, which names the paths that overlap.
    private static func checkTrees(_ layers: [SharedLayer]) throws {
        var conflicts: [String: [String]] = [:]
        var level = [SharedDirectory(path: "", providers: layers.enumerated().map { ($0.offset, $0.element.root.digest!) })]
        while !level.isEmpty {
            prefetch(level.flatMap { $0.providers.map { ($0.layer, $0.tree) } }, layers)
            var next: [SharedDirectory] = []
            for directory in level {
                // Each name's first provider, and the directories each name is in more than one layer.
                var first: [String: (layer: Int, entry: TreeEntry)] = [:]
                var subdirectories: [String: [(layer: Int, tree: Digest)]] = [:]
                for (index, tree) in directory.providers {
                    let layer = layers[index]
                    for entry in try layer.store.tree(tree).entries {
                        let path = directory.path.isEmpty ? entry.name : directory.path + "/" + entry.name
                        if entry.kind == .directory { subdirectories[entry.name, default: []].append((index, entry.digest!)) }
                        guard let existing = first[entry.name] else {
                            first[entry.name] = (index, entry)
                            continue
                        }
                        if entry.kind == .directory && existing.entry.kind == .directory { continue }
                        if existing.entry.isIdenticalForOverlap(entry) { continue }
                        let other = layers[existing.layer]
                        if LayerStack.replaces(other, layer) || LayerStack.replaces(layer, other) { continue }
                        conflicts["\(other.label)\u{0}\(layer.label)", default: []].append("/" + path)
                    }
                }
                for (name, providers) in subdirectories where providers.count > 1 && providers.contains(where: { $0.tree != providers[0].tree }) {
                    next.append(SharedDirectory(path: directory.path.isEmpty ? name : directory.path + "/" + name, providers: providers))
                }
            }
            level = next
        }
        guard !conflicts.isEmpty else { return }
        let lines = conflicts.sorted { $0.key < $1.key }.map { key, paths in
            let names = key.split(separator: "\u{0}")
            let sorted = paths.sorted()
            let shown = sorted.prefix(3).joined(separator: ", ") + (sorted.count > 3 ? " and \(sorted.count - 3) more" : "")
            return "layers \(names[0]) and \(names[1]) both provide \(shown)"
        }
        throw LayerError("software layers overlap (neither replaces the other):\n  " + lines.joined(separator: "\n  "))
    }

    /// Fetches the manifests (trees, path lists) that lazily fetched layers lack, together, rather
    /// than one per read.
    private static func prefetch(_ manifests: [(layer: Int, digest: Digest)], _ layers: [SharedLayer]) {
        var missing: [ObjectIdentifier: (remote: RemoteObjects, digests: Set<Digest>)] = [:]
        for (index, digest) in manifests {
            guard let remote = layers[index].remote, !layers[index].store.has(digest) else { continue }
            missing[ObjectIdentifier(remote), default: (remote, [])].digests.insert(digest)
        }
        // A failure shows again, with its reason, when the check reads that manifest.
        for (remote, digests) in missing.values { _ = remote.prefetchManifests(Array(digests), connections: RemoteObjects.idleLimit) }
    }
}
