import Foundation
/// Builds trees from archives: tarballs, and the control and data members of `.deb` packages.
public enum ArchiveImporter {
    /// Builds a tree from a tar archive. Paths are made relative and checked (no absolute paths, no
    /// `..`, nothing beneath a symlink); hard links must point to a member earlier in the archive.
    public static func importTar(_ reader: ArchiveReader, into batch: ObjectStore.Batch) throws -> (root: TreeEntry, statistics: IngestStatistics) {
        try importTar(reader, into: batch, builder: TreeBuilder(source: reader.name), mergedUsr: false, paths: nil)
    }

    /// With `mergedUsr`, paths land where dpkg's writes land on a merged-/usr system (`MergedUsr`), and
    /// an aliased directory's own entry gives way to its `/usr` twin's metadata; `paths` hears each
    /// member's path as the archive names it (dpkg's view, as its `.list` files keep it).
    static func importTar(_ reader: ArchiveReader, into batch: ObjectStore.Batch, builder: TreeBuilder, mergedUsr: Bool, paths: ((String) -> Void)?)
        throws -> (root: TreeEntry, statistics: IngestStatistics)
    {
        var statistics = IngestStatistics()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while let member = try reader.next() {
            let original = try TreeBuilder.components(of: member.path, in: reader.name)
            if !original.isEmpty { paths?("/" + original.joined(separator: "/")) }
            let path = mergedUsr ? MergedUsr.mapped(original) : original
            let linkTarget = try member.hardlinkTarget.map { target in
                let targetPath = try TreeBuilder.components(of: target, in: reader.name)
                return mergedUsr ? MergedUsr.mapped(targetPath) : targetPath
            }
            if linkTarget == nil, member.kind == .directory, path.count == 2, path != original, try builder.contains(path) { continue }
            try add(member, at: path, linkedTo: linkTarget, from: reader, to: builder, into: batch, buffer: buffer, statistics: &statistics)
        }
        return (try builder.store(into: batch), statistics)
    }

    /// Adds one member just read from `reader` at `path` (checked components), or, with `linkedTo`, a
    /// hard link to an earlier member; a regular file's data goes into `batch`. Every tar importer goes
    /// through here, so all refuse the same hostile members (a name beneath a symlink or a file, a
    /// directory over a file, a link to nothing earlier: `TreeBuilder`).
    public static func add(_ member: ArchiveMember, at path: [String], linkedTo linkTarget: [String]?, from reader: ArchiveReader, to builder: TreeBuilder,
                           into batch: ObjectStore.Batch, buffer: UnsafeMutableRawBufferPointer, statistics: inout IngestStatistics) throws {
        if let linkTarget { return try builder.link(path, to: linkTarget) }
        var entry = TreeEntry(name: path.last ?? ".", kind: member.kind, mode: member.mode, uid: member.uid, gid: member.gid,
                              mtime: member.mtime, target: member.symlinkTarget, xattrs: member.xattrs)
        switch member.kind {
        case .regular:
            let (digest, size) = try batch.putStream(buffer: buffer) { try reader.read(into: $0) }
            entry.digest = digest
            entry.size = size
            statistics.files += 1
            statistics.bytes += size
        case .directory:
            statistics.directories += 1
        case .characterDevice, .blockDevice:
            entry.device = member.device
            statistics.otherEntries += 1
        case .symlink, .fifo, .socket:
            statistics.otherEntries += 1
        }
        try builder.insert(entry, at: path)
    }

    public static func importTar(at path: String, into batch: ObjectStore.Batch) throws -> (root: TreeEntry, statistics: IngestStatistics) {
        try importTar(ArchiveReader(path: path), into: batch)
    }
}

/// The parts of a Debian binary package: its control members and its data tree.
public struct DebianPackage: Sendable {
    public struct ControlMember: Sendable {
        public var name: String
        public var mode: UInt32
        public var bytes: [UInt8]
    }

    /// `control`, maintainer scripts, `conffiles`, `md5sums`, `triggers`…, by name.
    public var controlMembers: [String: ControlMember]
    public var data: TreeEntry
    /// The data archive's paths as dpkg lists them in `info/PKG.list` (`/.`, `/bin`, `/bin/bash`…): the
    /// paths the package says, before they were mapped into merged /usr.
    public var fileList: [String]
    public var statistics: IngestStatistics

    public var control: String? { controlMembers["control"].map { String(decoding: $0.bytes, as: UTF8.self) } }

    /// Reads a `.deb`: checks the `ar` container and its format version, reads the control archive into
    /// memory and stores the data archive's tree into `batch`, merged into /usr (`MergedUsr`; the
    /// `base-files` layer also gets the symlinks).
    public static func read(path: String, into batch: ObjectStore.Batch) throws -> DebianPackage {
        let container = try ArchiveReader(path: path)
        var version: String?
        var controlMembers: [String: ControlMember]?
        var data: (root: TreeEntry, statistics: IngestStatistics)?
        var fileList = ["/."]
        while let member = try container.next() {
            let bytes = try container.readAll(sizeHint: member.size)
            if bytes.count != Int(member.size) { throw StoreError("\(path): member '\(member.path)' is truncated") }
            switch member.path {
            case "debian-binary":
                version = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            case let name where name.hasPrefix("control.tar"):
                controlMembers = try readControl(ArchiveReader(bytes: bytes, name: "\(path)(\(name))"))
            case let name where name.hasPrefix("data.tar"):
                let builder = TreeBuilder(source: "\(path)(\(name))")
                // The control archive comes first in a `.deb` (dpkg-deb refuses any other order).
                if let control = controlMembers?["control"], packageName(control.bytes) == MergedUsr.linkOwner { try MergedUsr.addLinks(to: builder) }
                data = try ArchiveImporter.importTar(ArchiveReader(bytes: bytes, name: builder.source), into: batch, builder: builder, mergedUsr: true,
                                                     paths: { fileList.append($0) })
            default:
                continue
            }
        }
        guard let version else { throw StoreError("\(path): not a Debian package (no debian-binary member)") }
        guard version.hasPrefix("2.") else { throw StoreError("\(path): unsupported Debian package format \(version)") }
        guard let controlMembers, controlMembers["control"] != nil else { throw StoreError("\(path): no control file in the control archive") }
        guard let data else { throw StoreError("\(path): no data archive") }
        return DebianPackage(controlMembers: controlMembers, data: data.root, fileList: fileList, statistics: data.statistics)
    }

    /// The `Package` field of a control file's first paragraph.
    private static func packageName(_ control: [UInt8]) -> String? {
        for line in String(decoding: control, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { return nil }
            if line.hasPrefix("Package:") { return line.dropFirst("Package:".count).trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    private static func readControl(_ reader: ArchiveReader) throws -> [String: ControlMember] {
        var members: [String: ControlMember] = [:]
        while let member = try reader.next() {
            let path = try TreeBuilder.components(of: member.path, in: reader.name)
            guard member.kind == .regular, path.count == 1, let name = path.first else { continue }
            members[name] = ControlMember(name: name, mode: member.mode, bytes: try reader.readAll(sizeHint: member.size))
        }
        return members
    }
}
