import Foundation
import GRDB
import StrataLayers
import StrataStore

/// One version in a named image's version chain. Versions are immutable; only their state changes.
public struct ImageVersion: Hashable, Sendable, Codable {
    public enum State: String, Sendable, Codable { case active, deleted }

    public var name: String
    public var version: Int
    /// The image manifest's digest: the image's serial number.
    public var digest: Digest
    /// The root tree of the image's filesystem (what the search index starts from).
    public var filesystem: Digest
    public var created: Date
    public var creator: User
    /// The image this one was derived from (provenance), if any.
    public var parent: Digest?
    public var state: State
    public var tags: [String]
    public var isDefault: Bool

    /// `NAME@N`.
    public var reference: String { "\(name)@\(version)" }
}

/// A named image: its owner, default version and access lists.
public struct NamedImage: Hashable, Sendable, Codable {
    public var name: String
    public var owner: User
    public var defaultVersion: Int?
    public var versions: Int
    public var activeVersions: Int
    /// Who may check out, besides the owner and root.
    public var checkout: [User]
    /// Who may check in new versions, besides the owner and root.
    public var checkin: [User]
}

public enum Permission: String, Sendable, Codable, CaseIterable {
    case checkout, checkin
}

/// The Mirage catalog: named images, their version chains, provenance and access lists, in SQLite in
/// the Strata home (`catalog.sqlite`), with the images' objects in the home store (`store/`). Rows are
/// never removed: a deleted version keeps its row (provenance survives) while its objects become
/// collectable. Every change is one transaction.
public final class Catalog: Sendable {
    public let home: StrataHome
    public let store: ObjectStore
    let database: DatabaseQueue

    public var path: String { home.path + "/catalog.sqlite" }

    static let schemaVersion = 1
    static let schema = """
        CREATE TABLE images (
            name TEXT PRIMARY KEY,
            owner_uid INTEGER NOT NULL,
            owner TEXT NOT NULL,
            default_version INTEGER
        );
        CREATE TABLE versions (
            name TEXT NOT NULL REFERENCES images(name),
            version INTEGER NOT NULL,
            digest TEXT NOT NULL,
            filesystem TEXT NOT NULL,
            created REAL NOT NULL,
            creator_uid INTEGER NOT NULL,
            creator TEXT NOT NULL,
            parent TEXT,
            state TEXT NOT NULL CHECK (state IN ('active', 'deleted')),
            PRIMARY KEY (name, version)
        );
        CREATE INDEX versions_by_digest ON versions(digest);
        CREATE TABLE tags (
            name TEXT NOT NULL REFERENCES images(name),
            tag TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (name, tag)
        );
        CREATE TABLE access (
            name TEXT NOT NULL REFERENCES images(name),
            uid INTEGER NOT NULL,
            user TEXT NOT NULL,
            permission TEXT NOT NULL CHECK (permission IN ('checkout', 'checkin')),
            PRIMARY KEY (name, uid, permission)
        );
        CREATE TABLE image_layers (
            image TEXT NOT NULL,
            position INTEGER NOT NULL,
            repository TEXT NOT NULL,
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            layer TEXT NOT NULL,
            PRIMARY KEY (image, position)
        );
        CREATE INDEX image_layers_by_name ON image_layers(name);
        \(SearchIndex.schema)
        """

    /// Opens the catalog of `home`, creating it and the home store when they do not exist yet.
    public init(home: StrataHome) throws {
        self.home = home
        let storePath = home.path + "/store"
        if !FileManager.default.fileExists(atPath: storePath + "/objects/sha256") { try makeDirectories(home.path) }
        store = try ObjectStore(root: storePath, create: !FileManager.default.fileExists(atPath: storePath + "/objects/sha256"))
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // A rollback journal keeps the file whole at every moment; FULL makes each commit durable.
            try db.execute(sql: "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
        }
        configuration.busyMode = .timeout(30)
        let path = home.path + "/catalog.sqlite"
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
            // Readers without write permission open an existing catalog read-only: only a new file needs its schema.
            let version = try database.read { try Int.fetchOne($0, sql: "PRAGMA user_version") ?? 0 }
            if version < Catalog.schemaVersion {
                try database.write { db in
                    try db.execute(sql: Catalog.schema)
                    try db.execute(sql: "PRAGMA user_version = \(Catalog.schemaVersion)")
                }
            }
        } catch let error as DatabaseError {
            throw CatalogError("\(path): \(error.message ?? error.description)")
        }
    }

    // MARK: Reading

    /// Every named image, by name; `includeDeleted` adds those whose versions are all deleted.
    public func namedImages(includeDeleted: Bool = false) throws -> [NamedImage] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM images ORDER BY name").compactMap { try namedImage($0, db) }
        }.filter { includeDeleted || $0.activeVersions > 0 }
    }

    public func namedImage(_ name: String) throws -> NamedImage {
        guard let image = try database.read({ try namedImage(name, $0) }) else { throw CatalogError("no image named '\(name)' in \(path)") }
        return image
    }

    func namedImage(_ name: String, _ db: Database) throws -> NamedImage? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM images WHERE name = ?", arguments: [name]) else { return nil }
        let counts = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS total, SUM(state = 'active') AS active FROM versions WHERE name = ?", arguments: [name])!
        let access = try Row.fetchAll(db, sql: "SELECT uid, user, permission FROM access WHERE name = ? ORDER BY user", arguments: [name])
        func members(_ permission: Permission) -> [User] {
            access.filter { $0["permission"] == permission.rawValue }.map { User(uid: UInt32($0["uid"] as Int64), name: $0["user"]) }
        }
        return NamedImage(name: name, owner: User(uid: UInt32(row["owner_uid"] as Int64), name: row["owner"]), defaultVersion: row["default_version"],
                          versions: counts["total"], activeVersions: counts["active"] ?? 0,
                          checkout: members(.checkout), checkin: members(.checkin))
    }

    /// The version chain of a named image, oldest first.
    public func versions(of name: String) throws -> [ImageVersion] {
        let versions = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE name = ? ORDER BY version", arguments: [name]).map { try version($0, db) }
        }
        guard !versions.isEmpty else { throw CatalogError("no image named '\(name)' in \(path)") }
        return versions
    }

    /// Every version of every image, in name and version order.
    public func allVersions() throws -> [ImageVersion] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM versions ORDER BY name, version").map { try version($0, db) }
        }
    }

    /// The version a reference names, whatever its state and whoever asks.
    public func resolve(_ reference: ImageReference) throws -> ImageVersion {
        try database.read { try resolve(reference, $0).first! }
    }

    /// The version a reference names, for a caller who needs `permission` on it. A digest may be a
    /// version of several named images: any one the caller may use will do.
    public func resolve(_ reference: ImageReference, for permission: Permission, by user: User) throws -> ImageVersion {
        try database.read { db in
            let candidates = try resolve(reference, db)
            var refusal: Error?
            for candidate in candidates {
                do {
                    try authorize(permission, on: candidate.name, by: user, db)
                    return candidate
                } catch {
                    refusal = refusal ?? error
                }
            }
            throw refusal!
        }
    }

    /// Candidates for a reference, never empty.
    func resolve(_ reference: ImageReference, _ db: Database) throws -> [ImageVersion] {
        let rows: [Row]
        switch reference {
        case .digest(let digest):
            rows = try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE digest = ? ORDER BY state = 'deleted', name, version", arguments: [digest.description])
            guard !rows.isEmpty else { throw CatalogError("image \(digest) is not in the catalog \(path)") }
        case .defaultVersion(let name):
            guard let image = try namedImage(name, db) else { throw CatalogError("no image named '\(name)' in \(path)") }
            guard let number = image.defaultVersion else { throw CatalogError("image '\(name)' has no default version: all its versions are deleted") }
            rows = try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE name = ? AND version = ?", arguments: [name, number])
        case .version(let name, let number):
            rows = try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE name = ? AND version = ?", arguments: [name, number])
            guard !rows.isEmpty else {
                if try namedImage(name, db) == nil { throw CatalogError("no image named '\(name)' in \(path)") }
                throw CatalogError("image '\(name)' has no version \(number)")
            }
        case .tag(let name, let tag):
            rows = try Row.fetchAll(db, sql: "SELECT v.* FROM versions v JOIN tags t ON t.name = v.name AND t.version = v.version WHERE t.name = ? AND t.tag = ?",
                                    arguments: [name, tag])
            guard !rows.isEmpty else { throw CatalogError("image '\(name)' has no tag '\(tag)'") }
        }
        return try rows.map { try version($0, db) }
    }

    /// The image manifest of a version, from the home store.
    public func manifest(of version: ImageVersion) throws -> ImageManifest {
        do {
            return try ImageManifest(decoding: try store.read(version.digest), what: "image \(version.reference) (\(version.digest))")
        } catch let error as StoreError {
            throw CatalogError("image \(version.reference): \(error)")
        }
    }

    func version(_ row: Row, _ db: Database) throws -> ImageVersion {
        let name: String = row["name"]
        let number: Int = row["version"]
        guard let digest = Digest(row["digest"] as String), let filesystem = Digest(row["filesystem"] as String),
              let state = ImageVersion.State(rawValue: row["state"]) else {
            throw CatalogError("\(path): catalog row for \(name)@\(number) is damaged")
        }
        let tags = try String.fetchAll(db, sql: "SELECT tag FROM tags WHERE name = ? AND version = ? ORDER BY tag", arguments: [name, number])
        let defaultVersion = try Int.fetchOne(db, sql: "SELECT default_version FROM images WHERE name = ?", arguments: [name])
        return ImageVersion(name: name, version: number, digest: digest, filesystem: filesystem,
                            created: Date(timeIntervalSince1970: row["created"]),
                            creator: User(uid: UInt32(row["creator_uid"] as Int64), name: row["creator"]),
                            parent: (row["parent"] as String?).flatMap { Digest($0) }, state: state, tags: tags,
                            isDefault: defaultVersion == number)
    }

    // MARK: Access control

    /// Root and the owner may do anything; others need the permission through the access list.
    func authorize(_ permission: Permission, on name: String, by user: User, _ db: Database) throws {
        if user.isRoot { return }
        guard let image = try namedImage(name, db) else { throw CatalogError("no image named '\(name)' in \(path)") }
        if image.owner.uid == user.uid { return }
        let members = permission == .checkout ? image.checkout : image.checkin
        if members.contains(where: { $0.uid == user.uid || $0 == .everyone }) { return }
        throw CatalogError("\(user) may not \(permission == .checkout ? "check out" : "check in new versions of") image '\(name)' (owner \(image.owner.name)); the owner or root can allow it with 'strata image grant \(name) \(user.name) --\(permission.rawValue)'")
    }

    /// Only the owner or root may delete versions and change the access lists.
    func authorizeOwner(of name: String, by user: User, to action: String, _ db: Database) throws {
        if user.isRoot { return }
        guard let image = try namedImage(name, db) else { throw CatalogError("no image named '\(name)' in \(path)") }
        guard image.owner.uid == user.uid else { throw CatalogError("\(user) may not \(action) image '\(name)': only its owner (\(image.owner.name)) or root may") }
    }
}
