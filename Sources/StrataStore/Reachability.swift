import Foundation
import Dispatch
import Synchronization

/// One object a manifest refers to.
public struct ManifestReference: Sendable {
    public var digest: Digest
    /// Where it hangs below the manifest (`/etc/passwd`, `:filesystem`, `:perl:whiteouts`), for messages.
    public var label: String
    /// File contents: never a manifest, so nothing to follow.
    public var isBlob: Bool
}

extension ManifestKind {
    /// The objects that the manifest in `bytes` refers to directly; nil when `bytes` is a blob.
    /// Throws when the bytes claim to be a manifest but do not decode.
    public static func references(in bytes: [UInt8], what: String) throws -> [ManifestReference]? {
        switch of(bytes) {
        case .tree:
            return try Tree(decoding: bytes, what: what).entries.compactMap { entry in
                entry.digest.map { ManifestReference(digest: $0, label: "/" + entry.name, isBlob: entry.kind == .regular) }
            }
        case .layer:
            let layer = try LayerManifest(decoding: bytes, what: what)
            var references = [ManifestReference(digest: layer.filesystem.digest!, label: ":filesystem", isBlob: false)]
            if let scripts = layer.scripts?.digest { references.append(ManifestReference(digest: scripts, label: ":scripts", isBlob: false)) }
            return references
        case .image:
            let image = try ImageManifest(decoding: bytes, what: what)
            var references = [ManifestReference(digest: image.filesystem.digest!, label: ":filesystem", isBlob: false)]
            for layer in image.layers {
                references.append(ManifestReference(digest: layer.layer, label: ":\(layer.name)", isBlob: false))
                if let whiteouts = layer.whiteouts?.digest {
                    references.append(ManifestReference(digest: whiteouts, label: ":\(layer.name):whiteouts", isBlob: false))
                }
            }
            if let privateLayer = image.privateLayer?.digest { references.append(ManifestReference(digest: privateLayer, label: ":private", isBlob: false)) }
            return references
        case .paths:
            return []
        case nil:
            return nil
        }
    }
}

/// What a set of root objects reaches through manifests, and what is missing on the way.
/// Blobs are only checked for presence, never read: reachability costs the manifests, not the data.
public struct Reachability: Sendable {
    public var reached: Set<Digest> = []
    /// Each missing or unreadable object with what referred to it.
    public var missing: [(digest: Digest, referrer: String)] = []

    /// Follows layer, image and tree manifests from `roots` (named for error messages).
    public init(store: ObjectStore, roots: [(name: String, digest: Digest)]) {
        for root in roots { visit(root.digest, referrer: root.name, isBlob: false, store: store) }
    }

    private mutating func visit(_ digest: Digest, referrer: String, isBlob: Bool, store: ObjectStore) {
        guard reached.insert(digest).inserted else { return }
        if isBlob {
            if !store.has(digest) { missing.append((digest, referrer)) }
            return
        }
        guard let bytes = try? store.read(digest) else { return missing.append((digest, referrer)) }
        let references: [ManifestReference]?
        do {
            references = try ManifestKind.references(in: bytes, what: "\(referrer) (\(digest))")
        } catch {
            return missing.append((digest, "\(referrer) (undecodable: \(error))"))
        }
        for reference in references ?? [] {
            visit(reference.digest, referrer: referrer + reference.label, isBlob: reference.isBlob, store: store)
        }
    }
}

extension ObjectStore {
    /// Re-hashes every object on all cores and returns those whose content does not match their name.
    public func corruptObjects() throws -> [Digest] {
        let objects = try allObjects()
        let corrupt = Mutex<[Digest]>([])
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2 * ProcessInfo.processInfo.activeProcessorCount) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < objects.count else { break }
                let digest = objects[index]
                if (try? hashObject(digest, buffer: buffer)) != digest { corrupt.withLock { $0.append(digest) } }
            }
        }
        return corrupt.withLock { $0.sorted() }
    }

    private func hashObject(_ digest: Digest, buffer: UnsafeMutableRawBufferPointer) throws -> Digest {
        let fd = try open(digest)
        var hasher = SHA256()
        while true {
            let n = try fd.read(into: buffer)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        return hasher.finalize()
    }
}

