import Foundation
import GRDB
import StrataHTTP
import StrataStore

/// One layer unit as the index knows it.
public struct LayerRecord: Hashable, Sendable, Codable {
    public enum State: String, Sendable, Codable { case active, withdrawn }

    public var name: String
    public var version: String
    public var architecture: String
    /// The layer manifest.
    public var digest: Digest
    public var state: State
    public var files: Int
    public var bytes: UInt64
    /// The canonical metadata text, as in the layer manifest.
    public var metadata: String
    /// The layer's `PathList`, for the overlap check; nil in the index of a repository served by an
    /// older Strata.
    public var paths: Digest?

    /// The objects that keep this layer whole in a store: its manifest (and so its trees and blobs)
    /// and its path list.
    public var roots: [(name: String, digest: Digest)] {
        [(name: "layer \(name) \(version)", digest: digest)] + (paths.map { [(name: "paths of layer \(name) \(version)", digest: $0)] } ?? [])
    }

    public func parsedMetadata() throws -> LayerMetadata {
        try LayerMetadata(parsing: metadata, file: "\(name)_\(version) (metadata)")
    }
}

/// A repository: a content-addressed store plus an SQLite index of its layer units. Objects are the
/// truth; the index can be rebuilt from them. The index uses a rollback journal (not WAL) so the file
/// is always whole, and a repository can be served as static files.
///
/// A repository with an `origin` is a mirror of one served over HTTP (`RepositoryMirror`): its index
/// is a copy, its store holds what was fetched so far, and it is never written to but by fetching.
public final class Repository: Sendable {
    public let path: String
    public let store: ObjectStore
    /// Where a mirror's objects come from; nil for a repository of its own.
    public let origin: HTTPLocation?
    /// Which https servers a mirror believes (`MirrorTLS`).
    public let tls: HTTPClient.Trust
    let database: DatabaseQueue

    static let marker = "strata-repository"
    static let schema = """
        CREATE TABLE IF NOT EXISTS layers (
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            architecture TEXT NOT NULL,
            digest TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('active', 'withdrawn')),
            files INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            metadata TEXT NOT NULL,
            paths TEXT,
            PRIMARY KEY (name, version, architecture)
        );
        """

    /// Creates an empty repository at `path` (a new or empty directory).
    @discardableResult
    public static func create(at path: String) throws -> Repository {
        if FileManager.default.fileExists(atPath: path + "/" + marker) { throw LayerError("\(path): a repository exists here already") }
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: path), !contents.isEmpty {
            throw LayerError("\(path): directory is not empty; a repository needs a new or empty directory")
        }
        try makeDirectories(path)
        _ = try ObjectStore(root: path, create: true)
        let repository = try Repository(openingDatabaseAt: path)
        try AtomicFile.write("\(marker) 1\n", to: path + "/" + marker)
        return repository
    }

    public convenience init(at path: String) throws {
        guard FileManager.default.fileExists(atPath: path + "/" + Repository.marker) else {
            throw LayerError("\(path): not a Strata repository (no \(Repository.marker) file; create one with 'strata repo init')")
        }
        try self.init(openingDatabaseAt: path)
    }

    private init(openingDatabaseAt path: String) throws {
        self.path = path
        origin = try RepositoryMirror.origin(at: path).map(HTTPLocation.init)
        tls = origin == nil ? .environment : try MirrorTLS.load(path)
        store = try ObjectStore(root: path, create: true)
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(30)
        do {
            database = try DatabaseQueue(path: path + "/index.sqlite", configuration: configuration)
            try database.write { try $0.execute(sql: Repository.schema) }
        } catch let error as DatabaseError {
            throw LayerError("\(path)/index.sqlite: \(error.message ?? error.description)")
        }
    }

    /// Changes the index in one transaction. An index made before path lists gains its `paths` column
    /// and each layer its list with its first change, not when opened: opening leaves a signed index
    /// as it was signed.
    private func changeIndex<T>(_ body: (Database) throws -> T) throws -> T {
        try database.write { db in
            if try !db.columns(in: "layers").contains(where: { $0.name == "paths" }) {
                try db.execute(sql: "ALTER TABLE layers ADD COLUMN paths TEXT")
                for row in try Row.fetchAll(db, sql: "SELECT digest FROM layers") {
                    guard let digest = Digest(row["digest"] as String), store.has(digest) else { continue }
                    let paths = try storePathList(try LayerManifest(decoding: try store.read(digest), what: "layer manifest \(digest)"))
                    try db.execute(sql: "UPDATE layers SET paths = ? WHERE digest = ?", arguments: [paths.description, digest.description])
                }
            }
            return try body(db)
        }
    }

    /// Stores the path list of a layer whose trees are in the store.
    private func storePathList(_ manifest: LayerManifest) throws -> Digest {
        try store.put(try PathList(root: manifest.filesystem.digest!, store: store).encoded())
    }

    // MARK: Reading the index

    public func layers(includeWithdrawn: Bool = false) throws -> [LayerRecord] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM layers \(includeWithdrawn ? "" : "WHERE state = 'active'") ORDER BY name, architecture")
                .map(Self.record)
        }.sorted { ($0.name, $0.architecture) == ($1.name, $1.architecture) ? Self.versionLess($0.version, $1.version) : false }
    }

    /// The unit of `name` at `version`, or the newest active one when no version is given.
    public func find(_ name: String, version: String? = nil) throws -> LayerRecord? {
        let candidates = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM layers WHERE name = ?", arguments: [name]).map(Self.record)
        }
        if let version {
            let wanted = try DebianVersion(version)
            return candidates.first { (try? DebianVersion($0.version)) == wanted }
        }
        return candidates.filter { $0.state == .active }.max { Self.versionLess($0.version, $1.version) }
    }

    /// A layer's manifest: from the store, or for a mirror's layer fetched only to `metadata` depth,
    /// from beside it.
    public func layerManifest(_ record: LayerRecord) throws -> LayerManifest {
        try layerManifest(record.digest, what: "layer \(record.name) \(record.version)")
    }

    public func layerManifest(_ digest: Digest, what: String) throws -> LayerManifest {
        let bytes = origin != nil && !store.has(digest) && hasPartialLayer(digest) ? try partialLayer(digest) : try store.read(digest)
        return try LayerManifest(decoding: bytes, what: what)
    }

    /// Whether every object of a layer is local: always for a repository of its own; for a mirror,
    /// once its layer manifest is in the store.
    public func isWhole(_ record: LayerRecord) -> Bool { origin == nil || store.has(record.digest) }

    private static func versionLess(_ a: String, _ b: String) -> Bool {
        guard let x = try? DebianVersion(a), let y = try? DebianVersion(b) else { return a < b }
        return x < y
    }

    private static func record(_ row: Row) throws -> LayerRecord {
        guard let digest = Digest(row["digest"] as String), let state = LayerRecord.State(rawValue: row["state"]) else {
            throw LayerError("index row for \(row["name"] as String) is damaged; rebuild the index with 'strata repo reindex'")
        }
        return LayerRecord(name: row["name"], version: row["version"], architecture: row["architecture"], digest: digest, state: state,
                           files: row["files"], bytes: UInt64(row["bytes"] as Int64), metadata: row["metadata"],
                           paths: (row["paths"] as String?).flatMap { Digest($0) })
    }

    // MARK: Changing the index

    /// Records a layer whose objects are already committed to the store. Importing the same unit with
    /// the same content again changes nothing; with different content it is refused.
    func register(_ metadata: LayerMetadata, digest: Digest, statistics: IngestStatistics, paths: Digest? = nil) throws -> LayerRecord {
        let paths = try paths ?? storePathList(try LayerManifest(decoding: try store.read(digest), what: "layer manifest \(digest)"))
        let record = LayerRecord(name: metadata.name, version: metadata.version.description, architecture: metadata.architecture,
                                 digest: digest, state: .active, files: statistics.files, bytes: statistics.bytes, metadata: metadata.controlText,
                                 paths: paths)
        try changeIndex { db in
            if let existing = try Row.fetchOne(db, sql: "SELECT digest FROM layers WHERE name = ? AND version = ? AND architecture = ?",
                                               arguments: [record.name, record.version, record.architecture]) {
                let existingDigest: String = existing["digest"]
                if existingDigest == digest.description {
                    try db.execute(sql: "UPDATE layers SET state = 'active', paths = ? WHERE digest = ?", arguments: [paths.description, existingDigest])
                    return
                }
                throw LayerError("\(record.name) \(record.version) (\(record.architecture)) is already in \(path) with different content (\(existingDigest)); withdraw it first or import under a new version")
            }
            try insert(record, db)
        }
        return record
    }

    private func insert(_ record: LayerRecord, _ db: Database) throws {
        try db.execute(sql: "INSERT INTO layers (name, version, architecture, digest, state, files, bytes, metadata, paths) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: [record.name, record.version, record.architecture, record.digest.description, record.state.rawValue,
                                   record.files, Int64(record.bytes), record.metadata, record.paths?.description])
    }

    /// Marks a unit withdrawn: it stays in the store (appliances using it keep working) but is no
    /// longer offered to resolution.
    public func withdraw(_ name: String, version: String) throws {
        try refuseIfMirror()
        guard let record = try find(name, version: version) else { throw LayerError("\(path): no layer \(name) \(version)") }
        try changeIndex { db in
            try db.execute(sql: "UPDATE layers SET state = 'withdrawn' WHERE name = ? AND version = ? AND architecture = ?",
                           arguments: [record.name, record.version, record.architecture])
        }
    }

    /// Rebuilds the index from the layer manifests in the store, keeping the withdrawn state of units the
    /// old index knew. Returns the number of layers indexed.
    @discardableResult
    public func rebuildIndex() throws -> Int {
        try refuseIfMirror()
        let withdrawn = Set(((try? layers(includeWithdrawn: true)) ?? []).filter { $0.state == .withdrawn }.map(\.digest))
        var records: [LayerRecord] = []
        for digest in try store.allObjects() {
            guard let fd = try? store.open(digest) else { continue }
            var header = [UInt8](repeating: 0, count: 6)
            let n = (try? header.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
            guard n == 6, ManifestKind.of(header) == .layer else { continue }
            var record = try storedRecord(digest)
            if withdrawn.contains(digest) { record.state = .withdrawn }
            records.append(record)
        }
        try changeIndex { db in
            try db.execute(sql: "DELETE FROM layers")
            for record in records { try insert(record, db) }
        }
        return records.count
    }

    /// The index row for a layer manifest in the store, read from the manifest itself.
    private func storedRecord(_ digest: Digest) throws -> LayerRecord {
        let manifest = try LayerManifest(decoding: try store.read(digest), what: "layer manifest \(digest)")
        let metadata = try LayerMetadata(parsing: manifest.metadata, file: "layer manifest \(digest)")
        var statistics = IngestStatistics()
        try store.walk(manifest.filesystem.digest!) { _, entry in
            if entry.kind == .regular {
                statistics.files += 1
                statistics.bytes += entry.size
            }
        }
        return LayerRecord(name: metadata.name, version: metadata.version.description, architecture: metadata.architecture,
                           digest: digest, state: .active, files: statistics.files, bytes: statistics.bytes, metadata: manifest.metadata,
                           paths: try storePathList(manifest))
    }

    /// Indexes a layer whose objects were copied into the store whole (a push or pull), with the same
    /// rules as an import: the same unit again changes nothing, different content under its version is refused.
    @discardableResult
    public func registerStoredLayer(_ digest: Digest) throws -> LayerRecord {
        let record = try storedRecord(digest)
        let metadata = try record.parsedMetadata()
        var statistics = IngestStatistics()
        statistics.files = record.files
        statistics.bytes = record.bytes
        return try register(metadata, digest: digest, statistics: statistics, paths: record.paths)
    }

    /// The next version of a layer numbered 1, 2, 3… (configuration layers): one more than the highest
    /// whole-number version the repository has ever had, withdrawn ones included.
    public func nextWholeVersion(of layer: String) throws -> DebianVersion {
        let highest = try layers(includeWithdrawn: true).filter { $0.name == layer }.compactMap { Int($0.version) }.max() ?? 0
        return try DebianVersion(String(highest + 1))
    }

    /// A mirror's index and objects are copies: changes belong to the repository it mirrors.
    func refuseIfMirror() throws {
        if let origin { throw LayerError("\(path) is a mirror of \(origin): change the repository there, then 'strata repo update'") }
    }

    /// Index rows whose layer manifest is missing from the store, for `fsck`.
    public func dangling() throws -> [LayerRecord] {
        try layers(includeWithdrawn: true).filter { !store.has($0.digest) }
    }
}
