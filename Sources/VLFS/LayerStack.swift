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
enum OverlapCheck {
    struct Provider {
        let layer: Int
        let entry: TreeEntry
    }

    static func check(_ layers: [SharedLayer]) throws {
        // One layer cannot overlap anything: spare the walk (an image mount has a single layer of 10⁵ files).
        guard layers.count > 1 else { return }
        var providers: [String: Provider] = [:]
        var conflicts: [String: [String]] = [:]
        for (index, layer) in layers.enumerated() {
            try layer.store.walk(layer.root.digest!) { path, entry in
                guard let existing = providers[path] else {
                    providers[path] = Provider(layer: index, entry: entry)
                    return
                }
                if entry.kind == .directory && existing.entry.kind == .directory { return }
                if identical(existing.entry, entry) { return }
                let other = layers[existing.layer]
                if LayerStack.replaces(other, layer) || LayerStack.replaces(layer, other) { return }
                conflicts["\(other.label)\u{0}\(layer.label)", default: []].append("/" + path)
            }
        }
        guard !conflicts.isEmpty else { return }
        let lines = conflicts.sorted { $0.key < $1.key }.map { key, paths in
            let names = key.split(separator: "\u{0}")
            let shown = paths.prefix(3).joined(separator: ", ") + (paths.count > 3 ? " and \(paths.count - 3) more" : "")
            return "layers \(names[0]) and \(names[1]) both provide \(shown)"
        }
        throw LayerError("software layers overlap (neither replaces the other):\n  " + lines.joined(separator: "\n  "))
    }

    /// Same content and metadata, ignoring times.
    static func identical(_ a: TreeEntry, _ b: TreeEntry) -> Bool {
        a.kind == b.kind && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.digest == b.digest && a.target == b.target
            && a.device == b.device && a.xattrs == b.xattrs
    }
}
