import Foundation
/// Builds trees from archives: tarballs, and the control and data members of `.deb` packages.
public enum ArchiveImporter {
    /// Builds a tree from a tar archive. Paths are made relative and checked (no absolute paths, no
    /// `..`, nothing beneath a symlink); hard links must point to a member earlier in the archive.
    public static func importTar(_ reader: ArchiveReader, into batch: ObjectStore.Batch) throws -> (root: TreeEntry, statistics: IngestStatistics) {
        let builder = TreeBuilder(source: reader.name)
        var statistics = IngestStatistics()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while let member = try reader.next() {
            let path = try TreeBuilder.components(of: member.path, in: reader.name)
            if let target = member.hardlinkTarget {
                try builder.link(path, to: try TreeBuilder.components(of: target, in: reader.name))
                continue
            }
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
        return (try builder.store(into: batch), statistics)
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
    public var statistics: IngestStatistics

    public var control: String? { controlMembers["control"].map { String(decoding: $0.bytes, as: UTF8.self) } }

    /// Reads a `.deb`: checks the `ar` container and its format version, reads the control archive into
    /// memory and stores the data archive's tree into `batch`.
    public static func read(path: String, into batch: ObjectStore.Batch) throws -> DebianPackage {
        let container = try ArchiveReader(path: path)
        var version: String?
        var controlMembers: [String: ControlMember]?
        var data: (root: TreeEntry, statistics: IngestStatistics)?
        while let member = try container.next() {
            let bytes = try container.readAll(sizeHint: member.size)
            if bytes.count != Int(member.size) { throw StoreError("\(path): member '\(member.path)' is truncated") }
            switch member.path {
            case "debian-binary":
                version = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            case let name where name.hasPrefix("control.tar"):
                controlMembers = try readControl(ArchiveReader(bytes: bytes, name: "\(path)(\(name))"))
            case let name where name.hasPrefix("data.tar"):
                data = try ArchiveImporter.importTar(ArchiveReader(bytes: bytes, name: "\(path)(\(name))"), into: batch)
            default:
                continue
            }
        }
        guard let version else { throw StoreError("\(path): not a Debian package (no debian-binary member)") }
        guard version.hasPrefix("2.") else { throw StoreError("\(path): unsupported Debian package format \(version)") }
        guard let controlMembers, controlMembers["control"] != nil else { throw StoreError("\(path): no control file in the control archive") }
        guard let data else { throw StoreError("\(path): no data archive") }
        return DebianPackage(controlMembers: controlMembers, data: data.root, statistics: data.statistics)
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
