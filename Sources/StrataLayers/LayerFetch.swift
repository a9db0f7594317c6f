import Foundation
import Synchronization
import StrataStore

/// How far fetching a layer into a mirror has come, for a progress line.
public struct FetchProgress: Sendable {
    /// `name version` of the layer being fetched.
    public var layer: String
    public var objects = 0
    public var totalObjects = 0
    public var bytes: Int64 = 0
    public var totalBytes: Int64 = 0
}

public typealias FetchObserver = @Sendable (FetchProgress) -> Void

extension Repository {
    /// Makes sure every object of the given layers is in this repository's store. Nothing to do for
    /// a repository of its own; a mirror fetches what it lacks — the layer manifests, their trees
    /// level by level, then the blobs of all of them in one pass — several objects at once, each
    /// verified against its digest.
    ///
    /// Manifests are stored only after everything they refer to, so a mirror that holds a layer
    /// manifest holds the whole layer, and a fetch cut short leaves no manifest whose children are
    /// missing: running it again fetches only the rest.
    public func fetchLayers(_ records: [LayerRecord], progress: FetchObserver? = nil) throws {
        guard let origin else { return }
        let wanted = records.filter { !store.has($0.digest) }
        if wanted.isEmpty { return }
        let fetcher = ObjectFetcher(location: origin, trust: tls, store: store, partialDirectory: path + "/partial")
        let label = wanted.count == 1 ? "\(wanted[0].name) \(wanted[0].version)" : "\(wanted.count) layers"
        let tally = FetchTally(FetchProgress(layer: label), observer: progress)
        let layers = try fetcher.manifests(wanted.map(\.digest))
        tally.add(objects: layers.count, bytes: layers.values.reduce(0) { $0 + $1.count })

        var trees: [Digest: [UInt8]] = [:]
        var blobs: [Digest: UInt64] = [:]
        var level: [Digest] = []
        for record in wanted {
            let manifest = try LayerManifest(decoding: layers[record.digest]!, what: "layer \(record.name) \(record.version) from \(origin)")
            level += [manifest.filesystem.digest!] + (manifest.scripts?.digest.map { [$0] } ?? [])
        }
        var seen = Set(level)
        level = Array(seen)
        while !level.isEmpty {
            let fetched = try fetcher.manifests(level.filter { !store.has($0) })
            tally.add(objects: fetched.count, bytes: fetched.values.reduce(0) { $0 + $1.count })
            var next: [Digest] = []
            for digest in level {
                let bytes = try fetched[digest] ?? store.read(digest)
                trees[digest] = fetched[digest]
                for entry in try Tree(decoding: bytes, what: "tree \(digest) from \(origin)").entries {
                    guard let child = entry.digest else { continue }
                    if entry.kind == .directory {
                        if seen.insert(child).inserted { next.append(child) }
                    } else if !store.has(child) {
                        blobs[child] = entry.size
                    }
                }
            }
            level = next
        }
        let manifestBytes = layers.values.reduce(0) { $0 + $1.count } + trees.values.reduce(0) { $0 + $1.count }
        tally.expect(objects: layers.count + trees.count + blobs.count, bytes: Int64(manifestBytes) + blobs.values.reduce(0) { $0 + Int64($1) })
        try fetcher.blobs(blobs, received: { tally.add(objects: $0 ? 1 : 0, bytes: $1) })

        for group in [Array(trees.values), Array(layers.values)] {
            let batch = try store.beginBatch()
            for bytes in group { try batch.put(bytes) }
            try batch.commit()
        }
        tally.finish()
    }
}

/// Counts what a fetch has done, from every worker, and tells the observer at most ten times a second.
final class FetchTally: Sendable {
    private let state: Mutex<(progress: FetchProgress, lastReport: ContinuousClock.Instant)>
    private let observer: FetchObserver?

    init(_ progress: FetchProgress, observer: FetchObserver?) {
        state = Mutex((progress, ContinuousClock.now))
        self.observer = observer
    }

    func expect(objects: Int, bytes: Int64) {
        state.withLock {
            $0.progress.totalObjects = objects
            $0.progress.totalBytes = bytes
        }
    }

    func add(objects: Int, bytes: Int) {
        let report: FetchProgress? = state.withLock {
            $0.progress.objects += objects
            $0.progress.bytes += Int64(bytes)
            guard ContinuousClock.now - $0.lastReport > .milliseconds(100) else { return nil }
            $0.lastReport = ContinuousClock.now
            return $0.progress
        }
        if let report { observer?(report) }
    }

    func finish() {
        observer?(state.withLock { $0.progress })
    }
}
