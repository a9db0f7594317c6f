import Foundation
import Mirage
import StrataStore
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// `private reset`: keeps the private layer as evidence in the catalog, then gives the VLFS an empty
/// one — while it stays mounted. The old private layer and whiteouts move to `archive/ID/` in the
/// VLFS's state; the catalog image (named `NAME-evidence`) is what `private mount` serves.
public enum PrivateReset {
    /// Returns the evidence image and the paths whose kernel caches must be dropped. `reload` builds the
    /// stack again (its whiteout sets, now empty, are read from disk); it runs before any change can.
    public static func reset(_ union: Union, state: VLFSState, catalog: Catalog, reload: () throws -> LayerStack) throws -> (evidence: ImageVersion, changed: [String]) {
        let prepared = try Snapshot.Prepared(union, catalog: catalog)
        return try union.gate.closed { () throws -> (ImageVersion, [String]) in
            let evidence = try catalog.checkin(manifest: try Snapshot.capture(union, name: state.name, catalog: catalog, prepared: prepared),
                                               name: evidenceName(state.name))
            let archive = archiveDirectory(of: state, evidence: evidence.digest)
            try makeDirectories(archive, mode: 0o700)
            let changed = try union.resetPrivateLayer(archivingTo: archive)
            _ = try union.replaceStack(try reload())
            return (evidence, changed)
        }
    }

    public static func evidenceName(_ vlfs: String) -> String { "\(vlfs)-evidence" }

    /// Where the reset that made `evidence` moved the private layer (`private/`) and whiteouts (`whiteouts/`).
    public static func archiveDirectory(of state: VLFSState, evidence: Digest) -> String {
        "\(state.directory)/archive/\(evidence.hex.prefix(16))"
    }
}
