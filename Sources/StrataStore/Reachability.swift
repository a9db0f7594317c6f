import Foundation
import Dispatch
import Synchronization

/// What a set of root objects reaches through manifests, and what is missing on the way.
public struct Reachability: Sendable {
    public var reached: Set<Digest> = []
    /// Each missing or unreadable object with what referred to it.
    public var missing: [(digest: Digest, referrer: String)] = []

    /// Follows layer, image and tree manifests from `roots` (named for error messages).
    public init(store: ObjectStore, roots: [(name: String, digest: Digest)]) {
        for root in roots { visit(root.digest, referrer: root.name, store: store) }
    }

    private mutating func visit(_ digest: Digest, referrer: String, store: ObjectStore) {
        guard reached.insert(digest).inserted else { return }
        guard let bytes = try? store.read(digest) else {
            missing.append((digest, referrer))
            return
        }
        switch ManifestKind.of(bytes) {
        case .tree:
            guard let tree = try? Tree(decoding: bytes) else { return missing.append((digest, "\(referrer) (undecodable tree)")) }
            for entry in tree.entries {
                if let child = entry.digest { visit(child, referrer: "\(referrer)/\(entry.name)", store: store) }
            }
        case .layer:
            guard let layer = try? LayerManifest(decoding: bytes) else { return missing.append((digest, "\(referrer) (undecodable layer)")) }
            visit(layer.filesystem.digest!, referrer: "\(referrer):filesystem", store: store)
            if let scripts = layer.scripts?.digest { visit(scripts, referrer: "\(referrer):scripts", store: store) }
        case .image:
            guard let image = try? ImageManifest(decoding: bytes) else { return missing.append((digest, "\(referrer) (undecodable image)")) }
            visit(image.filesystem.digest!, referrer: "\(referrer):filesystem", store: store)
            for layer in image.layers {
                visit(layer.layer, referrer: "\(referrer):\(layer.name)", store: store)
                if let whiteouts = layer.whiteouts?.digest { visit(whiteouts, referrer: "\(referrer):\(layer.name):whiteouts", store: store) }
            }
            if let privateLayer = image.privateLayer?.digest { visit(privateLayer, referrer: "\(referrer):private", store: store) }
        case nil:
            break
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

