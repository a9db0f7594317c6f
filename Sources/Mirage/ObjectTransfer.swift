import Foundation
import StrataStore

/// Copies what roots reach from one store to another (Mirage's push/pull), walking the manifests:
/// objects the destination has are not copied, and every object copied is hashed on the way and
/// refused if its content does not match its name. The copy is one batch: it appears whole or not at all.
public enum ObjectTransfer {
    public struct Report: Sendable, Codable {
        public var copied = 0
        public var present = 0
        public var bytes: UInt64 = 0
    }

    public static func copy(_ roots: [Digest], from source: ObjectStore, to destination: ObjectStore) throws -> Report {
        var report = Report()
        var seen = Set<Digest>()
        var pending = roots.map { (digest: $0, label: $0.description, isBlob: false) }
        let batch = try destination.beginBatch()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        while let next = pending.popLast() {
            guard seen.insert(next.digest).inserted else { continue }
            let present = destination.has(next.digest)
            if next.isBlob {
                if present {
                    report.present += 1
                    continue
                }
                let file: FileDescriptor
                do { file = try source.open(next.digest) } catch { throw CatalogError("object \(next.digest) (\(next.label)) is missing from \(source.root)") }
                let (digest, size) = try batch.putFile(file, buffer: buffer)
                guard digest == next.digest else { throw CatalogError("object \(next.digest) (\(next.label)) in \(source.root) is corrupt: its content hashes to \(digest)") }
                report.copied += 1
                report.bytes += size
                continue
            }
            // Manifests are read from the destination when it has them, to follow what they reach.
            let bytes: [UInt8]
            do {
                bytes = present ? try destination.read(next.digest) : try source.readVerified(next.digest)
            } catch {
                throw CatalogError("\(next.label): \(error)")
            }
            if present {
                report.present += 1
            } else {
                try batch.put(bytes)
                report.copied += 1
                report.bytes += UInt64(bytes.count)
            }
            for reference in try ManifestKind.references(in: bytes, what: next.label) ?? [] {
                pending.append((reference.digest, next.label + reference.label, reference.isBlob))
            }
        }
        try batch.commit()
        return report
    }
}
