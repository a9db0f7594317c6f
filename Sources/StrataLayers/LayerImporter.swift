import Foundation
import StrataStore

/// Turns sources into layer units: a Strata layer directory (`NAME_VERSION/metadata`, `filesystem/`,
/// `scripts/`), a `.deb`, or a plain directory or tarball with metadata given by the caller.
extension Repository {
    public static let scriptNames: Set<String> = ["pre-install", "post-install", "pre-remove", "post-remove"]
    /// Debian maintainer scripts and the layer scripts they become.
    public static let debianScripts = ["preinst": "pre-install", "postinst": "post-install", "prerm": "pre-remove", "postrm": "post-remove"]
    /// The member of a Debian layer's `scripts/` tree holding the package's paths as dpkg lists them
    /// (`info/PKG.list`); made at import, never taken from the package.
    public static let debianFileList = "list"

    /// Imports one source. `metadata` is required for plain directories and tarballs and refused otherwise.
    public func importLayer(from source: String, metadata: LayerMetadata? = nil) throws -> LayerRecord {
        try refuseIfMirror()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory) else { throw LayerError("\(source): no such file or directory") }
        let isLayerDirectory = isDirectory.boolValue && FileManager.default.fileExists(atPath: source + "/metadata")
        let isDebian = !isDirectory.boolValue && Self.isDebianPackage(source)
        if metadata != nil && (isLayerDirectory || isDebian) {
            throw LayerError("\(source): carries its own metadata; --name/--version are only for plain directories and tarballs")
        }
        let batch = try store.beginBatch()
        let imported: (LayerMetadata, LayerManifest, IngestStatistics)
        if isLayerDirectory {
            imported = try importLayerDirectory(source, batch: batch)
        } else if isDebian {
            imported = try importDebian(source, batch: batch)
        } else if let metadata {
            imported = try importPlain(source, isDirectory: isDirectory.boolValue, metadata: metadata, batch: batch)
        } else {
            throw LayerError("\(source): not a layer directory (no metadata file) nor a .deb; give --name and --version to import a plain directory or tarball")
        }
        let digest = try batch.put(imported.1.encoded())
        try batch.commit()
        return try register(imported.0, digest: digest, statistics: imported.2)
    }

    static func isDebianPackage(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 8)) == Data("!<arch>\n".utf8)
    }

    private func importLayerDirectory(_ source: String, batch: ObjectStore.Batch) throws -> (LayerMetadata, LayerManifest, IngestStatistics) {
        let metadataPath = source + "/metadata"
        let metadata = try LayerMetadata(parsing: try String(contentsOfFile: metadataPath, encoding: .utf8), file: metadataPath)
        let base = (source as NSString).standardizingPath.split(separator: "/").last.map(String.init) ?? source
        if let separator = base.firstIndex(of: "_") {
            let expected = "\(metadata.name)_\(metadata.version)"
            guard base == expected else {
                throw LayerError("\(source): directory name says \(base[..<separator]) \(base[base.index(after: separator)...]), but \(metadataPath) says \(metadata.name) \(metadata.version) (expected directory \(expected))")
            }
        }
        guard FileManager.default.fileExists(atPath: source + "/filesystem") else { throw LayerError("\(source): layer directory has no filesystem/ folder") }
        var noCache: StatCache? = nil
        let (filesystem, statistics) = try DirectoryImporter.importTree(at: source + "/filesystem", into: batch, statCache: &noCache)
        var scripts: TreeEntry?
        let scriptsPath = source + "/scripts"
        if FileManager.default.fileExists(atPath: scriptsPath) {
            for name in try FileManager.default.contentsOfDirectory(atPath: scriptsPath) where !Self.scriptNames.contains(name) {
                throw LayerError("\(scriptsPath)/\(name): unknown script (expected one of \(Self.scriptNames.sorted().joined(separator: ", ")))")
            }
            scripts = try DirectoryImporter.importTree(at: scriptsPath, into: batch, statCache: &noCache).root
        }
        return (metadata, LayerManifest(metadata: metadata.controlText, filesystem: filesystem, scripts: scripts), statistics)
    }

    private func importDebian(_ source: String, batch: ObjectStore.Batch) throws -> (LayerMetadata, LayerManifest, IngestStatistics) {
        let package = try DebianPackage.read(path: source, into: batch)
        let metadata = try LayerMetadata(parsing: package.control ?? "", file: "\(source)(control)")
        let scripts = TreeBuilder(source: source)
        for member in package.controlMembers.values where member.name != "control" && member.name != Self.debianFileList {
            try scripts.addFile(at: [Self.debianScripts[member.name] ?? member.name], contents: member.bytes, mode: member.mode, into: batch)
        }
        // dpkg's view of the files, which the tree no longer says once mapped into merged /usr.
        try scripts.addFile(at: [Self.debianFileList], contents: Array(package.fileList.map { $0 + "\n" }.joined().utf8), mode: 0o644, into: batch)
        let manifest = LayerManifest(metadata: metadata.controlText, filesystem: package.data, scripts: try scripts.store(into: batch))
        return (metadata, manifest, package.statistics)
    }

    private func importPlain(_ source: String, isDirectory: Bool, metadata: LayerMetadata, batch: ObjectStore.Batch) throws
        -> (LayerMetadata, LayerManifest, IngestStatistics)
    {
        let (filesystem, statistics): (TreeEntry, IngestStatistics)
        if isDirectory {
            var cache: StatCache? = StatCache(path: path + "/statcache")
            (filesystem, statistics) = try DirectoryImporter.importTree(at: source, into: batch, statCache: &cache)
            try cache?.save()
        } else {
            (filesystem, statistics) = try ArchiveImporter.importTar(at: source, into: batch)
        }
        return (metadata, LayerManifest(metadata: metadata.controlText, filesystem: filesystem, scripts: nil), statistics)
    }

    /// Checks a layer out: its filesystem tree into `directory`, or, with `layerFormat`, the whole unit
    /// as `directory/NAME_VERSION/{metadata,filesystem,scripts}`.
    public func checkout(_ record: LayerRecord, to directory: String, layerFormat: Bool = false) throws {
        let manifest = try layerManifest(record)
        guard layerFormat else { return try Checkout.run(manifest.filesystem, from: store, to: directory) }
        let unit = "\(directory)/\(record.name)_\(record.version)"
        try makeDirectories(unit)
        try AtomicFile.write(manifest.metadata, to: unit + "/metadata")
        try Checkout.run(manifest.filesystem, from: store, to: unit + "/filesystem")
        if let scripts = manifest.scripts { try Checkout.run(scripts, from: store, to: unit + "/scripts") }
    }
}
