import Foundation
import GRDB
import StrataLayers
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// The catalog's search index, built at check-in. It indexes trees, not images (Mirage's hybrid
/// indexing): each distinct directory manifest gets its entries indexed once, so a new version that
/// changes ten files adds only the few directories on the way to them, and a hundred images of one
/// family cost little more than one. A hit is placed in images by walking up from its directory
/// through the directories that contain it to image roots.
///
/// The index doubles as the record of trees known to be whole: a tree is indexed only after its
/// subtrees and blobs were found in the store, and `gc` drops the rows of the trees it frees. So a
/// check-in verifies only the trees it brings that are new, in time proportional to the change.
enum SearchIndex {
    static let schema = """
        CREATE TABLE trees (
            id INTEGER PRIMARY KEY,
            digest BLOB NOT NULL UNIQUE
        );
        CREATE TABLE tree_entries (
            tree INTEGER NOT NULL REFERENCES trees(id),
            name TEXT NOT NULL,
            kind INTEGER NOT NULL,
            digest BLOB,
            size INTEGER NOT NULL
        );
        CREATE INDEX tree_entries_by_tree ON tree_entries(tree);
        CREATE INDEX tree_entries_by_name ON tree_entries(name);
        CREATE INDEX tree_entries_by_digest ON tree_entries(digest);
        """

    /// Indexes every tree an image reaches (its filesystem, its layers' trees, whiteout sets and
    /// private layer) that is not indexed yet, checking on the way that each is whole in `store`.
    static func index(_ image: ImageManifest, named name: String, store: ObjectStore, _ db: Database) throws {
        var roots = [(image.filesystem.digest!, "filesystem")]
        for layer in image.layers {
            let manifest: LayerManifest
            do {
                manifest = try LayerManifest(decoding: try store.read(layer.layer), what: "layer \(layer.name) \(layer.version)")
            } catch {
                throw CatalogError("cannot check in image '\(name)': layer \(layer.name) \(layer.version): \(error)")
            }
            roots.append((manifest.filesystem.digest!, "layer \(layer.name)"))
            if let scripts = manifest.scripts?.digest { roots.append((scripts, "layer \(layer.name) scripts")) }
            if let whiteouts = layer.whiteouts?.digest { roots.append((whiteouts, "layer \(layer.name) whiteouts")) }
        }
        if let privateLayer = image.privateLayer?.digest { roots.append((privateLayer, "private layer")) }
        for (root, label) in roots { try index(root, label: label, image: name, store: store, db) }
    }

    /// A tree already indexed was found whole (with its subtree, in the same transaction), so the walk stops there.
    private static func index(_ root: Digest, label: String, image: String, store: ObjectStore, _ db: Database) throws {
        let known = try db.makeStatement(sql: "SELECT 1 FROM trees WHERE digest = ?")
        let addTree = try db.makeStatement(sql: "INSERT INTO trees (digest) VALUES (?)")
        let addEntry = try db.makeStatement(sql: "INSERT INTO tree_entries (tree, name, kind, digest, size) VALUES (?, ?, ?, ?, ?)")
        func missing(_ digest: Digest, _ path: String) -> CatalogError {
            CatalogError("cannot check in image '\(image)': object \(digest) (\(label) /\(path)) is missing from \(store.root)")
        }
        var pending = [(root, "")]
        while let (digest, path) = pending.popLast() {
            let key = Data(digest.bytes)
            if try Int.fetchOne(known, arguments: [key]) != nil { continue }
            guard store.has(digest) else { throw missing(digest, path) }
            try addTree.execute(arguments: [key])
            let tree = db.lastInsertedRowID
            for entry in try store.tree(digest).entries {
                try addEntry.execute(arguments: [tree, entry.name, Int(entry.kind.rawValue), entry.digest.map { Data($0.bytes) }, Int64(entry.size)])
                let child = path.isEmpty ? entry.name : path + "/" + entry.name
                if entry.kind == .directory {
                    pending.append((entry.digest!, child))
                } else if entry.kind == .regular, !store.has(entry.digest!) {
                    throw missing(entry.digest!, child)
                }
            }
        }
    }

    /// Drops the rows of trees that are gone from the store (after `gc`), keeping the index a record of whole trees.
    static func forget(_ digests: [Digest], _ db: Database) throws {
        let find = try db.makeStatement(sql: "SELECT id FROM trees WHERE digest = ?")
        for digest in digests {
            guard let id = try Int64.fetchOne(find, arguments: [Data(digest.bytes)]) else { continue }
            try db.execute(sql: "DELETE FROM tree_entries WHERE tree = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM trees WHERE id = ?", arguments: [id])
        }
    }
}

extension Catalog {
    /// Tells the index that `gc` removed these objects from the home store.
    public func forgetCollected(_ digests: [Digest]) throws {
        try database.write { try SearchIndex.forget(digests, $0) }
    }
}

/// What to look for across the catalog's images; the criteria given must all hold.
public struct SearchQuery: Sendable {
    /// A path glob (see `PathGlob`): `/usr/lib/*/libssl.so*`, `**/bin/openssl`, `libssl.so*`.
    public var path: String?
    /// Files with this content.
    public var content: Digest?
    /// Images composed with a layer satisfying this relation (`openssl (<< 3.0.11)`).
    public var layer: Relation?
    /// Search deleted versions too.
    public var includeDeleted = false

    public init(path: String? = nil, content: Digest? = nil, layer: Relation? = nil, includeDeleted: Bool = false) {
        self.path = path
        self.content = content
        self.layer = layer
        self.includeDeleted = includeDeleted
    }
}

public struct SearchHit: Hashable, Sendable, Codable {
    /// `NAME@N`.
    public var image: String
    public var imageDigest: Digest
    public var path: String?
    public var kind: String?
    /// The file's content digest (regular files) or tree digest (directories).
    public var digest: Digest?
    public var size: UInt64?
    /// The matching layer, for layer queries: `repository/name version`.
    public var layer: String?
}

extension Catalog {
    public func search(_ query: SearchQuery) throws -> [SearchHit] {
        guard query.path != nil || query.content != nil || query.layer != nil else {
            throw CatalogError("search needs a path glob, a content digest or a layer")
        }
        return try database.read { db in
            var versions = try Row.fetchAll(db, sql: "SELECT * FROM versions \(query.includeDeleted ? "" : "WHERE state = 'active'") ORDER BY name, version")
                .map { try version($0, db) }
            var layerOf: [Digest: String] = [:]
            if let relation = query.layer {
                for row in try Row.fetchAll(db, sql: "SELECT image, repository, name, version FROM image_layers WHERE name = ?", arguments: [relation.name]) {
                    let version: String = row["version"]
                    if let constraint = relation.constraint {
                        guard let parsed = try? DebianVersion(version), constraint.isSatisfied(by: parsed) else { continue }
                    }
                    if let image = Digest(row["image"] as String) { layerOf[image] = "\(row["repository"] as String)/\(row["name"] as String) \(version)" }
                }
                versions = versions.filter { layerOf[$0.digest] != nil }
            }
            guard query.path != nil || query.content != nil else {
                return versions.map { SearchHit(image: $0.reference, imageDigest: $0.digest, layer: layerOf[$0.digest]) }
            }
            let byRoot = Dictionary(grouping: versions, by: \.filesystem)
            var placements = TreePlacements(db: db, roots: Set(byRoot.keys))
            let glob = query.path.map(PathGlob.init)
            var hits: [SearchHit] = []
            for match in try matchingEntries(query, db) {
                for placement in try placements.of(match.tree) {
                    let path = "/" + (placement.path.isEmpty ? match.name : placement.path + "/" + match.name)
                    if let glob, !glob.matches(path) { continue }
                    for version in byRoot[placement.root] ?? [] {
                        hits.append(SearchHit(image: version.reference, imageDigest: version.digest, path: path, kind: match.kind.description,
                                              digest: match.digest, size: match.kind == .regular ? match.size : nil, layer: layerOf[version.digest]))
                    }
                }
            }
            return hits.sorted { ($0.image, $0.path ?? "") < ($1.image, $1.path ?? "") }
        }
    }

    private struct Match {
        var tree: Int64
        var name: String
        var kind: EntryKind
        var digest: Digest?
        var size: UInt64
    }

    /// Index rows whose name (the glob's last component) and content match.
    private func matchingEntries(_ query: SearchQuery, _ db: Database) throws -> [Match] {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let name = query.path.flatMap({ PathGlob($0).namePattern }) {
            conditions.append("name GLOB ?")
            arguments += [name]
        }
        if let content = query.content {
            conditions.append("digest = ?")
            arguments += [Data(content.bytes)]
        }
        return try Row.fetchAll(db, sql: "SELECT tree, name, kind, digest, size FROM tree_entries \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "))", arguments: arguments)
            .compactMap { row in
                guard let kind = EntryKind(rawValue: UInt8(row["kind"] as Int)) else { return nil }
                return Match(tree: row["tree"], name: row["name"], kind: kind, digest: (row["digest"] as Data?).map { Digest(bytes: $0) },
                             size: UInt64(row["size"] as Int64))
            }
    }
}

/// Where an indexed directory sits in the images: every (image root, path) it is reachable at, found
/// by walking up through the directories that list it. Memoized, since hits cluster in directories.
private struct TreePlacements {
    let db: Database
    let roots: Set<Digest>
    var memo: [Int64: [(root: Digest, path: String)]] = [:]

    init(db: Database, roots: Set<Digest>) {
        self.db = db
        self.roots = roots
    }

    mutating func of(_ tree: Int64) throws -> [(root: Digest, path: String)] {
        if let known = memo[tree] { return known }
        guard let key = try Data.fetchOne(db, sql: "SELECT digest FROM trees WHERE id = ?", arguments: [tree]) else { return [] }
        var result: [(root: Digest, path: String)] = []
        if roots.contains(Digest(bytes: key)) { result.append((Digest(bytes: key), "")) }
        let parents = try Row.fetchAll(db, sql: "SELECT tree, name FROM tree_entries WHERE digest = ? AND kind = ?",
                                       arguments: [key, Int(EntryKind.directory.rawValue)])
        for parent in parents {
            let name: String = parent["name"]
            for placement in try of(parent["tree"]) {
                result.append((placement.root, placement.path.isEmpty ? name : placement.path + "/" + name))
            }
        }
        memo[tree] = result
        return result
    }
}
