import Foundation
import StrataLayers
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// A store of the Strata home and the roots that keep its objects alive.
public struct StoreRoots: Sendable {
    public var store: ObjectStore
    public var roots: [(name: String, digest: Digest)]
    /// The catalog whose index must forget what is collected from this store (the home store's).
    public var catalog: Catalog?
}

/// Every root in a Strata home, store by store, for `gc`:
/// - the home store: every active catalog version; every image a live `image mount` serves (listed in
///   `mounts/PID/image`); and held references, one digest a line, in `held/*` and `vlfs/*/held` (where a
///   VLFS keeps what it archived, such as a reset's private layer);
/// - every local repository named in the home, and the Debian layer repository: every indexed layer,
///   active or withdrawn. A VLFS's LDF can only name indexed layers, so these cover every LDF.
public enum HomeRoots {
    public static func collect(home: StrataHome) throws -> [StoreRoots] {
        var result: [StoreRoots] = []
        if FileManager.default.fileExists(atPath: home.path + "/catalog.sqlite") {
            let catalog = try Catalog(home: home)
            var roots = try catalog.allVersions().filter { $0.state == .active }.map { (name: "image \($0.reference)", digest: $0.digest) }
            roots += try mountedImages(home) + heldReferences(home)
            result.append(StoreRoots(store: catalog.store, roots: roots, catalog: catalog))
        }
        var locations = try home.repositories().map(\.location).filter { $0.hasPrefix("/") }
        if FileManager.default.fileExists(atPath: home.path + "/debian/strata-repository") { locations.append(home.path + "/debian") }
        for location in Set(locations).sorted() {
            let repository = try Repository(at: location)
            let roots = try repository.layers(includeWithdrawn: true).flatMap(\.roots)
            result.append(StoreRoots(store: repository.store, roots: roots))
        }
        return result
    }

    /// Images served by `image mount` daemons that are still running.
    static func mountedImages(_ home: StrataHome) throws -> [(name: String, digest: Digest)] {
        let directory = home.path + "/mounts"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.compactMap { name in
            guard let pid = Int32(name), kill(pid, 0) == 0 || errno == EPERM,
                  let text = try? String(contentsOfFile: "\(directory)/\(name)/image", encoding: .utf8),
                  let digest = Digest(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
            return ("image mounted by process \(pid)", digest)
        }
    }

    static func heldReferences(_ home: StrataHome) throws -> [(name: String, digest: Digest)] {
        var files = ((try? FileManager.default.contentsOfDirectory(atPath: home.path + "/held")) ?? []).map { home.path + "/held/" + $0 }
        files += ((try? FileManager.default.contentsOfDirectory(atPath: home.path + "/vlfs")) ?? []).map { home.path + "/vlfs/" + $0 + "/held" }
        var roots: [(name: String, digest: Digest)] = []
        for file in files.sorted() {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let field = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?.trimmingCharacters(in: .whitespaces) ?? ""
                if field.isEmpty { continue }
                guard let digest = Digest(field) else { throw CatalogError("\(file):\(index + 1): expected a digest (sha256:<64 hex digits>), found '\(field)'") }
                roots.append(("held by \(file)", digest))
            }
        }
        return roots
    }
}
