import Foundation
import GRDB
import StrataStore

extension Catalog {
    /// Checks in an image whose objects are already in the home store: stores its manifest, appends a
    /// version to `name`'s chain (creating the named image, owned by `user`, if it is new), makes it the
    /// default version, and indexes it for search — the rows in one transaction.
    ///
    /// This is the entry point for snapshots of a VLFS as well as for `image checkin`. Everything the
    /// manifest reaches (trees, blobs, layer manifests, whiteout and private-layer trees) must be in
    /// `store` first; a manifest with missing objects is refused, naming the first one. Only trees the
    /// catalog has not seen whole before are checked, so the cost follows what is new.
    /// `parent` is the image it derives from; by default the named image's current default version.
    @discardableResult
    public func checkin(manifest: ImageManifest, name: String, parent: Digest? = nil, by user: User = .current) throws -> ImageVersion {
        try ImageReference.checkName(name, what: "image name")
        try database.read { db in
            if try namedImage(name, db) != nil { try authorize(.checkin, on: name, by: user, db) }
        }
        return try HomeLock.withShared(home) {
            let digest = try store.put(manifest.encoded())
            return try database.write { db in
                if try namedImage(name, db) == nil {
                    try db.execute(sql: "INSERT INTO images (name, owner_uid, owner) VALUES (?, ?, ?)", arguments: [name, Int64(user.uid), user.name])
                } else {
                    try authorize(.checkin, on: name, by: user, db)
                }
                let previous = try String.fetchOne(db, sql: "SELECT v.digest FROM versions v JOIN images i ON i.name = v.name AND i.default_version = v.version WHERE v.name = ?",
                                                   arguments: [name])
                let number = (try Int.fetchOne(db, sql: "SELECT MAX(version) FROM versions WHERE name = ?", arguments: [name]) ?? 0) + 1
                try db.execute(sql: """
                    INSERT INTO versions (name, version, digest, filesystem, created, creator_uid, creator, parent, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active')
                    """, arguments: [name, number, digest.description, manifest.filesystem.digest!.description, Date().timeIntervalSince1970,
                                     Int64(user.uid), user.name, (parent?.description ?? previous)])
                try db.execute(sql: "UPDATE images SET default_version = ? WHERE name = ?", arguments: [number, name])
                for (position, layer) in manifest.layers.enumerated() {
                    try db.execute(sql: "INSERT OR IGNORE INTO image_layers (image, position, repository, name, version, layer) VALUES (?, ?, ?, ?, ?, ?)",
                                   arguments: [digest.description, position, layer.repository, layer.name, layer.version, layer.layer.description])
                }
                try SearchIndex.index(manifest, named: name, store: store, db)
                return try resolve(.version(name, number), db).first!
            }
        }
    }

    /// Marks a version deleted (or, with `allVersions`, every version of its named image): the rows stay,
    /// the objects become collectable. A deleted default version hands the default to the newest
    /// active version left. Returns the versions newly deleted.
    @discardableResult
    public func delete(_ reference: ImageReference, allVersions: Bool = false, by user: User = .current) throws -> [ImageVersion] {
        try database.write { db in
            let target = try resolve(reference, db).first!
            try authorizeOwner(of: target.name, by: user, to: "delete versions of", db)
            let condition = allVersions ? "name = ?" : "name = ? AND version = ?"
            let arguments: StatementArguments = allVersions ? [target.name] : [target.name, target.version]
            let deleted = try Row.fetchAll(db, sql: "SELECT * FROM versions WHERE \(condition) AND state = 'active'", arguments: arguments).map { try version($0, db) }
            try db.execute(sql: "UPDATE versions SET state = 'deleted' WHERE \(condition)", arguments: arguments)
            let newest = try Int.fetchOne(db, sql: "SELECT MAX(version) FROM versions WHERE name = ? AND state = 'active'", arguments: [target.name])
            let current = try Int.fetchOne(db, sql: "SELECT default_version FROM images WHERE name = ?", arguments: [target.name])
            if let current, try String.fetchOne(db, sql: "SELECT state FROM versions WHERE name = ? AND version = ?", arguments: [target.name, current]) == "deleted" {
                try db.execute(sql: "UPDATE images SET default_version = ? WHERE name = ?", arguments: [newest, target.name])
            }
            return deleted
        }
    }

    /// Names a version with a tag (`NAME@TAG`), moving the tag if another version had it.
    public func tag(_ reference: ImageReference, as tag: String, by user: User = .current) throws -> ImageVersion {
        try ImageReference.checkName(tag, what: "tag")
        return try database.write { db in
            let target = try resolve(reference, db).first!
            try authorize(.checkin, on: target.name, by: user, db)
            try db.execute(sql: "INSERT OR REPLACE INTO tags (name, tag, version) VALUES (?, ?, ?)", arguments: [target.name, tag, target.version])
            return try resolve(.version(target.name, target.version), db).first!
        }
    }

    /// Makes a version the one that `NAME` alone checks out.
    public func setDefault(_ reference: ImageReference, by user: User = .current) throws -> ImageVersion {
        try database.write { db in
            let target = try resolve(reference, db).first!
            try authorize(.checkin, on: target.name, by: user, db)
            guard target.state == .active else { throw CatalogError("image \(target.reference) is deleted and cannot be the default version") }
            try db.execute(sql: "UPDATE images SET default_version = ? WHERE name = ?", arguments: [target.version, target.name])
            return try resolve(.version(target.name, target.version), db).first!
        }
    }

    /// Adds users to (or, with `granted` false, removes them from) a named image's access lists.
    public func setAccess(_ name: String, users: [User], permissions: [Permission], granted: Bool, by user: User = .current) throws {
        try database.write { db in
            try authorizeOwner(of: name, by: user, to: "change the access lists of", db)
            for member in users {
                for permission in permissions {
                    if granted {
                        try db.execute(sql: "INSERT OR REPLACE INTO access (name, uid, user, permission) VALUES (?, ?, ?, ?)",
                                       arguments: [name, Int64(member.uid), member.name, permission.rawValue])
                    } else {
                        try db.execute(sql: "DELETE FROM access WHERE name = ? AND uid = ? AND permission = ?",
                                       arguments: [name, Int64(member.uid), permission.rawValue])
                    }
                }
            }
        }
    }
}
