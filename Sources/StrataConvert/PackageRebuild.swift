import StrataLayers
import StrataStore

/// A package version the Debian archive no longer has, made into its layer from what the machine keeps:
/// the files dpkg lists for it (`info/PKG.list`, found where merged /usr puts them), its control fields
/// from the status paragraph (less dpkg's state), and its maintainer scripts and other control members
/// from `info/`. The files are the machine's as they are now, so a conffile the administrator edited is
/// in the layer as edited; the layer says where it came from in its `Rebuilt-From` field.
enum PackageRebuild {
    /// Control members dpkg keeps in `info/` beside the file list.
    static let members = ["preinst", "postinst", "prerm", "postrm", "conffiles", "md5sums", "triggers", "shlibs", "symbols", "templates", "config"]
    /// Status fields that are dpkg's state of the package, not the package.
    static let stateFields: Set<String> = ["status", "conffiles", "config-version", "triggers-pending", "triggers-awaited"]
    static let memberLimit = 64 << 20

    static func layer(of package: InstalledPackage, machine: inout MachineTree, source: String, into repository: Repository) throws -> LayerRecord {
        let prefixes = ["var/lib/dpkg/info/\(package.name):\(package.metadata.architecture).", "var/lib/dpkg/info/\(package.name)."]
        func member(_ name: String) throws -> [UInt8]? {
            for prefix in prefixes { if let bytes = try machine.file(prefix + name, limit: memberLimit) { return bytes } }
            return nil
        }
        guard let list = try member(Repository.debianFileList) else {
            throw LayerError("\(source): \(package.name) \(package.version) is not in the Debian archive, and the machine has no file list for it (/var/lib/dpkg/info/\(package.name).list)")
        }
        let batch = try repository.store.beginBatch()
        let files = TreeBuilder(source: "\(source): files of \(package.name)")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        for line in String(decoding: list, as: UTF8.self).split(separator: "\n") where line != "/." {
            let original = try TreeBuilder.components(of: String(line.drop { $0 == "/" }), in: "\(source)/var/lib/dpkg/info/\(package.name).list")
            let mapped = MergedUsr.mapped(original)
            // Gone from the machine: the package without it, and nothing for the configuration layer to delete.
            guard var entry = try machine.entry(mapped.joined(separator: "/")) ?? machine.entry(original.joined(separator: "/")) else { continue }
            entry.linkGroup = 0
            if entry.kind == .directory {
                entry.digest = nil
                if try files.contains(mapped) { continue }
            } else if entry.kind == .regular, let digest = entry.digest {
                let file = try machine.store.open(digest)
                _ = try batch.putFile(file, buffer: buffer)
            }
            try files.add(entry, at: mapped)
        }
        let scripts = TreeBuilder(source: "\(source): control data of \(package.name)")
        for name in members {
            guard let bytes = try member(name) else { continue }
            let mode: UInt32 = Repository.debianScripts[name] != nil || name == "config" ? 0o755 : 0o644
            try scripts.addFile(at: [Repository.debianScripts[name] ?? name], contents: bytes, mode: mode, into: batch)
        }
        try scripts.addFile(at: [Repository.debianFileList], contents: list, mode: 0o644, into: batch)
        var fields = package.paragraph.filter { !stateFields.contains($0.name.lowercased()) }
        fields.append(("Rebuilt-From", "the files of \(source); the Debian archive has no \(package.name) \(package.version)"))
        let metadata = try LayerMetadata(parsing: ControlFile.paragraph(fields), file: "\(source)/var/lib/dpkg/status (\(package.name))")
        let manifest = LayerManifest(metadata: metadata.controlText, filesystem: try files.store(into: batch), scripts: try scripts.store(into: batch))
        let digest = try batch.put(manifest.encoded())
        try batch.commit()
        return try repository.registerStoredLayer(digest)
    }
}
