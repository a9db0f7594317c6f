import Foundation
import StrataStore

extension Catalog {
    /// Checks in a directory or a tarball as a new version of `name`. The tree goes into the home store
    /// (unchanged files of a directory checked in before are not read again: a stat cache in the home
    /// remembers their digests); its provenance records the source path and host.
    @discardableResult
    public func checkin(path: String, name: String, parent: Digest? = nil, by user: User = .current) throws -> ImageVersion {
        try ImageReference.checkName(name, what: "image name")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw CatalogError("\(path): no such file or directory") }
        let source = URL(fileURLWithPath: path).standardizedFileURL.path
        return try HomeLock.withShared(home) {
            let batch = try store.beginBatch()
            let root: TreeEntry
            if isDirectory.boolValue {
                var cache: StatCache? = StatCache(path: home.path + "/cache/checkin.statcache")
                root = try DirectoryImporter.importTree(at: source, into: batch, statCache: &cache).root
                try? makeDirectories(home.path + "/cache")
                try? cache?.save()  // only a cache: a user who cannot write it checks in all the same
            } else {
                root = try ArchiveImporter.importTar(at: source, into: batch).root
            }
            try batch.commit()
            let provenance = ["source": source, "host": ProcessInfo.processInfo.hostName, "format": isDirectory.boolValue ? "directory" : "tarball"]
            return try checkin(manifest: ImageManifest(filesystem: root, provenance: provenance), name: name, parent: parent, by: user)
        }
    }

    /// Writes a version's filesystem to `directory` (new or empty), identical in content and metadata.
    public func checkout(_ version: ImageVersion, to directory: String) throws {
        guard version.state == .active else { throw CatalogError("image \(version.reference) is deleted; its objects may be gone") }
        try Checkout.run(try manifest(of: version).filesystem, from: store, to: directory)
    }
}
