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
    /// How much of a layer a fetch makes local.
    public enum FetchDepth: Sendable {
        /// Every object: the layer mounts without the server.
        case whole
        /// The layer manifest and the configuration scripts (the mount reads them to make the dpkg
        /// database); directory trees come as they are listed and file contents as they are opened
        /// (`RemoteObjects`, through `ObjectStore.fetchingMissingManifests`).
        case metadata
    }

    /// Where a mirror keeps the layer manifests of layers fetched to `metadata` depth: outside the
    /// store, whose layer manifests mean "whole".
    var partialLayers: String { path + "/layers" }

    /// Makes sure the given layers are in this repository's store to `depth`. Nothing to do for a
    /// repository of its own; a mirror fetches what it lacks — the layer manifests and path lists,
    /// their trees level by level, then the blobs of all of them in one pass — several objects at
    /// once, each verified against its digest.
    ///
    /// Layer manifests go into the store only after everything they refer to, so a mirror whose store
    /// holds a layer manifest holds the whole layer, and a fetch cut short leaves no layer manifest
    /// whose children are missing: running it again fetches only the rest. Trees may be stored before
    /// the blobs under them (a `metadata` fetch stores the scripts' trees and blobs alone).
    public func fetchLayers(_ records: [LayerRecord], depth: FetchDepth = .whole, progress: FetchObserver? = nil) throws {
        guard let origin else { return }
        let wanted = records.filter { !store.has($0.digest) && (depth == .whole || !hasPartialLayer($0.digest)) }
        if wanted.isEmpty { return }
        let fetcher = ObjectFetcher(location: origin, trust: tls, store: store, partialDirectory: path + "/partial")
        let label = wanted.count == 1 ? "\(wanted[0].name) \(wanted[0].version)" : "\(wanted.count) layers"
        let tally = FetchTally(FetchProgress(layer: label), observer: progress)
        var layers: [Digest: [UInt8]] = [:]
        for record in wanted { layers[record.digest] = try? partialLayer(record.digest) }
        let fetchedLayers = try fetcher.manifests(wanted.map(\.digest).filter { layers[$0] == nil })
        layers.merge(fetchedLayers) { old, _ in old }
        tally.add(objects: fetchedLayers.count, bytes: fetchedLayers.values.reduce(0) { $0 + $1.count })

        var manifests: [LayerManifest] = []
        for record in wanted {
            manifests.append(try LayerManifest(decoding: layers[record.digest]!, what: "layer \(record.name) \(record.version) from \(origin)"))
        }
        // Scripts are read at mount, before anything is opened, and path lists by the overlap check:
        // they come at either depth.
        var (trees, blobs) = try fetchTrees(manifests.compactMap { $0.scripts?.digest }, fetcher: fetcher, tally: tally)
        let pathLists = try fetcher.manifests(wanted.compactMap(\.paths).filter { !store.has($0) })
        tally.add(objects: pathLists.count, bytes: pathLists.values.reduce(0) { $0 + $1.count })
        trees.merge(pathLists) { old, _ in old }
        let (filesystemTrees, filesystemBlobs) = depth == .whole ? try fetchTrees(manifests.map { $0.filesystem.digest! }, fetcher: fetcher, tally: tally) : ([:], [:])
        trees.merge(filesystemTrees) { old, _ in old }
        blobs.merge(filesystemBlobs) { old, _ in old }
        let manifestBytes = layers.values.reduce(0) { $0 + $1.count } + trees.values.reduce(0) { $0 + $1.count }
        tally.expect(objects: layers.count + trees.count + blobs.count, bytes: Int64(manifestBytes) + blobs.values.reduce(0) { $0 + Int64($1) })
        try fetcher.blobs(blobs, received: { tally.add(objects: $0 ? 1 : 0, bytes: $1) })

        let batch = try store.beginBatch()
        for bytes in trees.values { try batch.put(bytes) }
        try batch.commit()
        switch depth {
        case .whole:
            let batch = try store.beginBatch()
            for bytes in layers.values { try batch.put(bytes) }
            try batch.commit()
            for digest in layers.keys { unlink("\(partialLayers)/\(digest.hex)") }
        case .metadata:
            try makeDirectories(partialLayers)
            for (digest, bytes) in layers where !hasPartialLayer(digest) { try AtomicFile.write(bytes, to: "\(partialLayers)/\(digest.hex)") }
        }
        tally.finish()
    }

    /// Whether the layer manifest of a layer fetched to `metadata` depth is here.
    func hasPartialLayer(_ digest: Digest) -> Bool { access("\(partialLayers)/\(digest.hex)", F_OK) == 0 }

    /// The layer manifest of a layer fetched to `metadata` depth, checked against its digest.
    func partialLayer(_ digest: Digest) throws -> [UInt8] {
        let bytes = try FileDescriptor.open("\(partialLayers)/\(digest.hex)", O_RDONLY).readAll()
        guard SHA256.hash(bytes) == digest else { throw LayerError("\(partialLayers)/\(digest.hex) is damaged (its content does not hash to its name)") }
        return bytes
    }

    /// Fetches the trees beneath `roots` that the store lacks, level by level (one round of requests
    /// per depth), reading those it has. Returns the fetched trees and the blobs they name that the
    /// store lacks, with their sizes.
    private func fetchTrees(_ roots: [Digest], fetcher: ObjectFetcher, tally: FetchTally) throws -> (trees: [Digest: [UInt8]], blobs: [Digest: UInt64]) {
        var trees: [Digest: [UInt8]] = [:]
        let blobs = try store.missingBlobs(under: roots) { level in
            let fetched = try fetcher.manifests(level.filter { !store.has($0) })
            tally.add(objects: fetched.count, bytes: fetched.values.reduce(0) { $0 + $1.count })
            trees.merge(fetched) { old, _ in old }
            return try level.map { try Tree(decoding: try fetched[$0] ?? store.read($0), what: "tree \($0) from \(fetcher.location)") }
        }
        return (trees, blobs)
    }
}

extension ObjectStore {
    /// The blobs beneath the trees `roots` that this store lacks, with their sizes. The trees are read
    /// a level at a time: `read` gets each level's digests together (so that it can fetch them in
    /// one round) and returns their trees in the same order.
    func missingBlobs(under roots: [Digest], read: ([Digest]) throws -> [Tree]) throws -> [Digest: UInt64] {
        var blobs: [Digest: UInt64] = [:]
        var seen = Set(roots)
        var level = Array(seen)
        while !level.isEmpty {
            var next: [Digest] = []
            for tree in try read(level) {
                for entry in tree.entries {
                    guard let child = entry.digest else { continue }
                    if entry.kind == .directory {
                        if seen.insert(child).inserted { next.append(child) }
                    } else if !has(child) {
                        blobs[child] = entry.size
                    }
                }
            }
            level = next
        }
        return blobs
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
