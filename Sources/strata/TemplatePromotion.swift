import Foundation
import Forensics
import Mirage
import StrataLayers
import StrataLifecycle
import StrataStore
import VLFS

/// `template promote`: a template's configuration, as made through its VLFS, becomes the next version
/// of its configuration layer, pinned in its LDF, and the template starts again from an empty private
/// layer. The private layer is taken by a reset (through the daemon when the template is mounted, so
/// nothing written meanwhile is lost: the capture and the swap happen with changes held back), which
/// also keeps it in the catalog as the image `NAME-evidence`: the configuration layer's provenance.
enum TemplatePromotion {
    static func promote(_ name: String, repositoryName: String, home: StrataHome) throws -> LayerRecord {
        let ldf = home.templateLDF(name)
        guard FileManager.default.fileExists(atPath: ldf) else {
            throw LayerError("template '\(name)' not found: no \(ldf) (make one with 'strata template create \(name) LDF')")
        }
        guard try home.repositories().contains(where: { $0.name == repositoryName }) else {
            throw LayerError("--repo \(repositoryName): not a repository named in \(home.repositoriesFile) (the LDF names the configuration layer's repository by name)")
        }
        let repository = try home.repository(repositoryName)
        if let origin = repository.origin {
            throw LayerError("repository '\(repositoryName)' is a mirror of \(origin): promote into a local repository")
        }
        let state = try VLFSState(home: home, name: name)
        if (try? state.ldf()) == nil { try state.recordLDF(ldf) }

        let answer = try VLFSRequests.perform("reset \(VLFSRequests.keepConfiguration)", state: state, home: home) { union, ldf in
            VLFSRequests.reset(union, state: state, home: home, ldf: ldf, invalidate: { _ in })
        }
        guard let field = answer.split(separator: " ").first, let evidence = Digest(field) else {
            throw LayerError("VLFS '\(name)': unexpected answer to reset: \(answer)")
        }
        let archive = PrivateReset.archiveDirectory(of: state, evidence: evidence)

        // The stack the reset archived the whiteouts of: the LDF is unchanged since.
        let union = try Composition.union(of: state, home: home)
        let whiteouts = try union.stack.layers.map { layer in
            (layer: layer, paths: try WhiteoutSet(file: "\(archive)/whiteouts/\(layer.whiteoutKey)").all)
        }
        let configName = StrataHome.configLayerName(ofTemplate: name)
        let previous = union.stack.layers.first { $0.kind == .config && $0.name == configName }
        if let previous { _ = try ObjectTransfer.copy([previous.digest], from: previous.store, to: repository.store) }

        let version = try repository.nextWholeVersion(of: configName)
        let metadata = try LayerMetadata(name: configName, version: version, description: "configuration of template \(name)",
                                         extraFields: [MetadataField(Composition.layerTypeField, "config"), MetadataField("Template", name),
                                                       MetadataField("Evidence", evidence.description)]
                                            + ConfigurationState.carried(try ConfigurationState.load(state.configuration), previous: previous?.metadata))
        let batch = try repository.store.beginBatch()
        let filesystem = try ConfigLayer.filesystem(privateLayer: archive + "/private", whiteouts: whiteouts, previous: previous,
                                                    union: union, into: batch)
        let digest = try batch.put(LayerManifest(metadata: metadata.controlText, filesystem: filesystem, scripts: nil).encoded())
        try batch.commit()
        let record = try repository.registerStoredLayer(digest)

        var edited = try LDF.parse(try String(contentsOfFile: ldf, encoding: .utf8), file: ldf)
        try edited.addExplicit(LDFEntry(repository: repositoryName, layer: configName, version: version, held: true))
        try AtomicFile.write(edited.render(), to: ldf)
        if let reply = try ControlChannel.send("update", to: state.controlSocket), !reply.hasPrefix("ok") {
            throw LayerError("\(configName) \(version) is in \(repositoryName) and \(ldf), but the mounted template did not take it: \(ControlChannel.failure(reply))")
        }
        return record
    }
}
