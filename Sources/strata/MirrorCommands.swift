import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

struct MirrorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mirror", abstract: "What a home's mirrors of served repositories hold.",
                                                    subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show which layers of a served repository are local to its mirror.",
            discussion: """
                A layer is local when its manifest is in the mirror's store: manifests are stored only \
                after everything they reach, so a local layer is whole and mounts without the server. A \
                partial layer was mounted lazily: its trees and scripts are here, and the files opened \
                so far (shown as files and bytes local); a remote layer has nothing here yet.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The served repository's name in the home.") var name: String
        @Flag(help: "Print JSON.") var json = false

        struct Layer: Encodable {
            enum State: String, Encodable { case local, partial, remote }
            let name: String, version: String, state: State, files: Int, bytes: UInt64, localFiles: Int, localBytes: UInt64
            var local: Bool { state == .local }
        }

        struct Report: Encodable {
            let repository: String, origin: String, layers: [Layer], objects: Int, objectBytes: UInt64, partialDownloads: Int
        }

        /// The files of a partial layer whose blobs are local, below the directories that are (a lazy
        /// mount fetches a directory when it is first listed).
        func localFiles(under tree: Digest, in store: ObjectStore) -> (files: Int, bytes: UInt64) {
            guard let entries = try? store.tree(tree).entries else { return (0, 0) }
            return entries.reduce((0, 0)) { total, entry in
                switch entry.kind {
                case .directory:
                    let below = localFiles(under: entry.digest!, in: store)
                    return (total.files + below.files, total.bytes + below.bytes)
                case .regular where store.has(entry.digest!):
                    return (total.files + 1, total.bytes + entry.size)
                default:
                    return total
                }
            }
        }

        func run() throws {
            let repository = try options.repository(name)
            guard let origin = repository.origin else { throw ValidationError("'\(name)' is not a served repository: it has no mirror") }
            let layers = try repository.layers().map { record in
                if repository.isWhole(record) {
                    return Layer(name: record.name, version: record.version, state: .local, files: record.files, bytes: record.bytes,
                                 localFiles: record.files, localBytes: record.bytes)
                }
                guard let manifest = try? repository.layerManifest(record) else {
                    return Layer(name: record.name, version: record.version, state: .remote, files: record.files, bytes: record.bytes, localFiles: 0, localBytes: 0)
                }
                let (files, bytes) = localFiles(under: manifest.filesystem.digest!, in: repository.store)
                return Layer(name: record.name, version: record.version, state: .partial, files: record.files, bytes: record.bytes, localFiles: files, localBytes: bytes)
            }
            let objects = try repository.store.allObjects()
            let objectBytes = objects.reduce(UInt64(0)) { total, digest in
                var status = stat()
                return total + (stat(repository.store.path(of: digest), &status) == 0 ? UInt64(status.st_size) : 0)
            }
            let partial = (try? FileManager.default.contentsOfDirectory(atPath: repository.path + "/partial").count) ?? 0
            let report = Report(repository: name, origin: origin.description, layers: layers, objects: objects.count, objectBytes: objectBytes,
                                partialDownloads: partial)
            if json { return try printJSON(report) }
            for layer in layers {
                let partial = layer.state == .partial ? " (\(layer.localFiles) files, \(layer.localBytes) bytes local)" : ""
                print("\(layer.name) \(layer.version) \(layer.state.rawValue) \(layer.files) files \(layer.bytes) bytes" + partial)
            }
            let local = layers.filter(\.local)
            print("\(local.count) of \(layers.count) layers local (\(local.reduce(0) { $0 + $1.bytes }) of \(layers.reduce(0) { $0 + $1.bytes }) bytes); "
                + "\(objects.count) objects, \(objectBytes) bytes in \(repository.path)" + (partial > 0 ? "; \(partial) partial downloads to resume" : ""))
        }
    }
}
