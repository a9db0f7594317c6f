import Foundation
import StrataLayers
import StrataStore

/// A layer of a VLFS as configuration sees it: who it is, where its files and scripts are stored.
public struct InstalledLayer: Sendable {
    public let repository: String
    public let metadata: LayerMetadata
    /// The layer manifest's digest: the identity of this instance.
    public let digest: Digest
    public let filesystem: TreeEntry
    /// The unit's `scripts/` tree: the four configuration scripts, and for a `.deb` every other member
    /// of its control archive (`conffiles`, `md5sums`, `triggers`, `templates`, `config`…).
    public let scripts: TreeEntry?
    public let store: ObjectStore
    /// Where blobs missing from `store` come from (a lazily fetched layer of a mirror).
    public let remote: RemoteObjects?
    /// The layer's `PathList`, when its repository's index names one.
    public let paths: Digest?

    public init(repository: String, metadata: LayerMetadata, digest: Digest, filesystem: TreeEntry, scripts: TreeEntry?, store: ObjectStore,
                remote: RemoteObjects? = nil, paths: Digest? = nil) {
        self.repository = repository
        self.metadata = metadata
        self.digest = digest
        self.filesystem = filesystem
        self.scripts = scripts
        self.store = store
        self.remote = remote
        self.paths = paths
    }

    /// Finds this layer's files by path.
    public func lookup() throws -> LayerLookup {
        LayerLookup(trees: TreeLookup(store: store), root: filesystem,
                    list: try paths.map { try PathList(decoding: try store.manifest($0), what: "path list of layer \(name) \(version)") })
    }

    public var name: String { metadata.name }
    public var version: String { metadata.version.description }

    /// A Debian package (policy makes `Maintainer` mandatory in a binary package's control file; Strata's
    /// layer format has no such field): configured by dpkg, as Debian configures it.
    public var isDebianPackage: Bool {
        metadata.extraFields.contains { $0.name.caseInsensitiveCompare("Maintainer") == .orderedSame }
    }

    /// The scripts tree's members by name (script names as stored: `pre-install`…, `conffiles`…).
    public func scriptMembers() throws -> [String: TreeEntry] {
        guard let digest = scripts?.digest else { return [:] }
        return Dictionary(try store.tree(digest).entries.filter { $0.kind == .regular }.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// One script's bytes, or nil when the layer has none by that name.
    public func script(_ script: LayerScript) throws -> [UInt8]? {
        guard let entry = try scriptMembers()[script.rawValue] else { return nil }
        return try content(of: entry)
    }

    /// A regular file's bytes, fetched first when the layer is lazily fetched and the blob is not here yet.
    public func content(of entry: TreeEntry) throws -> [UInt8] {
        guard let remote, !store.has(entry.digest!) else { return try store.read(entry.digest!) }
        return try FileDescriptor(raw: try remote.open(entry.digest!, size: entry.size), path: store.path(of: entry.digest!)).readAll()
    }
}

/// Finds a layer's entries by path. The trees are read only where the layer's path list, if it has
/// one, says a path may be: a lazily fetched layer fetches no trees to learn that it lacks a path.
public struct LayerLookup {
    var trees: TreeLookup
    let root: TreeEntry
    let list: PathList?

    /// The entry at `path` (relative, no leading slash), or nil.
    public mutating func entry(at path: String) throws -> TreeEntry? {
        if let list, !list.mayContain(path) { return nil }
        return try trees.entry(at: path, under: root)
    }
}

/// The four configuration scripts of a layer unit, and the Debian maintainer scripts they are.
public enum LayerScript: String, Sendable, CaseIterable {
    case preInstall = "pre-install", postInstall = "post-install", preRemove = "pre-remove", postRemove = "post-remove"

    public var debianName: String {
        switch self {
        case .preInstall: "preinst"
        case .postInstall: "postinst"
        case .preRemove: "prerm"
        case .postRemove: "postrm"
        }
    }

    public init?(debianName: String) {
        guard let script = LayerScript.allCases.first(where: { $0.debianName == debianName }) else { return nil }
        self = script
    }
}
