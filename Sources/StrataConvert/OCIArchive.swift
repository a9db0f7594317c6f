import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// An OCI image layout as one tar file (what skopeo calls `oci-archive:`), both ways.
enum OCIArchive {
    /// Tars the layout directory `layout` (one `OCILayoutWriter` made) into `destination`, atomically:
    /// members in name order, owned by root, time 0, so the same layout gives the same archive.
    static func write(layout: String, to destination: String) throws {
        let root = try FileDescriptor.open(layout, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        let blobs = try root.open(beneath: "blobs/sha256", O_RDONLY | O_DIRECTORY)
        let names = try blobs.entries().compactMap(\.text).filter { Digest($0)?.hex == $0 }.sorted()
        let parent = (destination as NSString).deletingLastPathComponent
        let temporary = (parent.isEmpty ? "." : parent) + "/.\((destination as NSString).lastPathComponent).tmp-\(getpid())"
        do {
            let output = try HashingFile(FileDescriptor.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644))
            let tar = try ArchiveWriter(name: destination, format: .tar, compression: .none) { try output.write($0) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            func file(_ name: String, in directory: borrowing FileDescriptor, as member: String) throws {
                let input = try directory.open(at: name, O_RDONLY)
                try tar.begin(ArchiveMember(path: member, kind: .regular, mode: 0o644, size: UInt64(try input.stat().st_size)))
                while true {
                    let n = try input.read(into: buffer)
                    if n == 0 { break }
                    try tar.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                }
            }
            for directory in ["blobs", "blobs/sha256"] { try tar.begin(ArchiveMember(path: directory, kind: .directory, mode: 0o755)) }
            for name in names { try file(name, in: blobs, as: "blobs/sha256/" + name) }
            try file("index.json", in: root, as: "index.json")
            try file("oci-layout", in: root, as: "oci-layout")
            try tar.finish()
            try output.descriptor.sync()
            _ = try sys("rename", destination) { rename(temporary, destination) }
        } catch {
            unlink(temporary)
            throw error
        }
        try AtomicFile.syncDirectory(parent.isEmpty ? "." : parent)
    }

    /// Unpacks a layout archive into the new directory `directory`, taking only what a layout holds —
    /// `oci-layout`, `index.json` (each at most `documentBytes`) and `blobs/sha256/HEX` files (each at
    /// most `blobBytes`, and hashing to its name) — and refusing anything that would leave the tree,
    /// links, and devices, with the archive's and the member's names. Other members are passed over.
    static func unpack(_ archive: String, into directory: String, limits: OCIImport.Limits) throws {
        let reader = try ArchiveReader(path: archive)
        try makeDirectories(directory + "/blobs/sha256")
        let root = try FileDescriptor.open(directory, O_RDONLY | O_DIRECTORY)
        let blobs = try root.open(beneath: "blobs/sha256", O_RDONLY | O_DIRECTORY)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while let member = try reader.next() {
            let path = try TreeBuilder.components(of: member.path, in: archive)
            let named = path.joined(separator: "/")
            if member.kind == .directory { continue }
            guard member.kind == .regular, member.hardlinkTarget == nil else {
                throw StoreError("\(archive): member '\(member.path)' is a \(member.hardlinkTarget == nil ? member.kind.description : "hard link"); an OCI layout holds only files and directories")
            }
            let target: (directory: Int32, name: String, limit: UInt64, digest: Digest?)
            switch path.count {
            case 1 where named == "index.json" || named == "oci-layout":
                target = (root.raw, named, limits.documentBytes, nil)
            case 3 where path[0] == "blobs" && path[1] == "sha256":
                guard let digest = Digest(path[2]), digest.hex == path[2] else { throw StoreError("\(archive): member '\(member.path)' is not named by a SHA-256 digest") }
                target = (blobs.raw, path[2], limits.blobBytes, digest)
            default:
                continue
            }
            guard member.size <= target.limit else {
                throw StoreError("\(archive): member '\(member.path)' claims \(member.size) bytes, more than the \(target.limit) allowed")
            }
            let output = try HashingFile(FileDescriptor(raw: try sys("open", directory + "/" + named) {
                openat(target.directory, target.name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            }, path: directory + "/" + named))
            while true {
                let n = try reader.read(into: buffer)
                if n == 0 { break }
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
            let digest = output.finalize()
            if let expected = target.digest, digest != expected {
                throw StoreError("\(archive): member '\(member.path)' does not hash to its name (its content is \(digest))")
            }
        }
    }
}
