import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

struct LayerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layer", abstract: "Import, list, check out and withdraw layer units.",
        subcommands: [Import.self, List.self, Show.self, Checkout.self, Withdraw.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import layer directories, .deb files, or a plain directory or tarball.",
            discussion: """
                Prints one 'name version digest' line per layer. A plain directory or tarball needs \
                --name and --version (and optionally relation fields); a layer directory \
                (NAME_VERSION/ with metadata and filesystem/) or a .deb carries its own metadata.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Argument(help: "Layer directories, .deb files, directories or tarballs.") var sources: [String]
        @Option(help: "Layer name, for a plain directory or tarball.") var name: String?
        @Option(help: "Layer version, for a plain directory or tarball.") var version: String?
        @Option(help: "Architecture (default: all).") var architecture: String?
        @Option(help: "Depends field.") var depends: String?
        @Option(name: .customLong("pre-depends"), help: "Pre-Depends field.") var preDepends: String?
        @Option(help: "Conflicts field.") var conflicts: String?
        @Option(help: "Provides field.") var provides: String?
        @Option(help: "Replaces field.") var replaces: String?

        func validate() throws {
            if (name == nil) != (version == nil) { throw ValidationError("--name and --version go together") }
            if name != nil && sources.count != 1 { throw ValidationError("--name and --version describe exactly one source") }
        }

        func metadata() throws -> LayerMetadata? {
            guard let name, let version else { return nil }
            let fields: [(String, String?)] = [("Layer", name), ("Version", version), ("Architecture", architecture), ("Depends", depends),
                                               ("Pre-Depends", preDepends), ("Conflicts", conflicts), ("Provides", provides), ("Replaces", replaces)]
            let text = fields.compactMap { field, value in value.map { "\(field): \($0)" } }.joined(separator: "\n")
            return try LayerMetadata(parsing: text + "\n", file: "command line")
        }

        func run() throws {
            let repo = try options.repository(repository)
            let metadata = try metadata()
            let progress = Progress()
            var failures = 0
            for (index, source) in sources.enumerated() {
                progress.show("[\(index + 1)/\(sources.count)] \(source)")
                do {
                    let record = try repo.importLayer(from: source, metadata: metadata)
                    progress.finish()
                    print("\(record.name) \(record.version) \(record.digest)")
                } catch {
                    progress.finish()
                    printError("error: \(error)")
                    failures += 1
                }
            }
            if failures > 0 { throw ExitCode.failure }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a repository's layer units.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Include withdrawn units.") var all = false

        func run() throws {
            let layers = try options.repository(repository).layers(includeWithdrawn: all)
            if json { return try printJSON(layers) }
            for layer in layers {
                let state = layer.state == .withdrawn ? "\twithdrawn" : ""
                print("\(layer.name)\t\(layer.version)\t\(layer.architecture)\t\(layer.files) files\t\(layer.digest)\(state)")
            }
        }
    }

    /// `NAME` or `NAME=VERSION`.
    struct LayerReference: ExpressibleByArgument {
        var name: String
        var version: String?

        init?(argument: String) {
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard let first = parts.first, !first.isEmpty else { return nil }
            name = first
            version = parts.count == 2 ? parts[1] : nil
        }

        func find(in repository: Repository) throws -> LayerRecord {
            guard let record = try repository.find(name, version: version) else {
                throw LayerError("\(repository.path): no layer \(name)\(version.map { " \($0)" } ?? "")")
            }
            return record
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a layer unit's metadata.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Argument(help: "NAME or NAME=VERSION (default: the newest active version).") var layer: LayerReference
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let record = try layer.find(in: options.repository(repository))
            if json { return try printJSON(record) }
            print("Digest: \(record.digest)\nState: \(record.state.rawValue)\n\(record.metadata)", terminator: "")
        }
    }

    struct Checkout: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a layer's filesystem tree (or, with --layer-format, the whole unit) to DIR.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Argument(help: "NAME or NAME=VERSION (default: the newest active version).") var layer: LayerReference
        @Argument(help: "A new or empty directory.") var directory: String
        @Flag(name: .customLong("layer-format"), help: "Write NAME_VERSION/{metadata,filesystem,scripts} into DIR.") var layerFormat = false

        func run() throws {
            let repo = try options.repository(repository)
            let record = try layer.find(in: repo)
            try repo.fetchLayers([record], progress: Progress().fetchObserver)
            try repo.checkout(record, to: directory, layerFormat: layerFormat)
        }
    }

    struct Withdraw: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a layer unit: it stays stored but is no longer offered.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Argument(help: "NAME=VERSION") var layer: LayerReference

        func run() throws {
            guard let version = layer.version else { throw ValidationError("give the version to withdraw: NAME=VERSION") }
            try options.repository(repository).withdraw(layer.name, version: version)
        }
    }
}
