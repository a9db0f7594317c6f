import ArgumentParser
import Foundation
import StrataConvert
import StrataStore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Take compositions out in other formats.", subcommands: [ExportOCI.self])
}

struct ExportOCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci",
        abstract: "Write an LDF's composition, a catalog image or a VLFS as an OCI image layout.",
        discussion: """
            SOURCE is an LDF file, vlfs:NAME (a VLFS as its state stands: its layers, then one layer with \
            what its private layer and whiteouts change), or an image of the catalog (NAME, NAME@N, NAME@TAG or \
            its digest; a snapshot of a VLFS exports as the VLFS did). DEST is a new or empty directory, or a \
            file ending in .tar for the layout as one archive (skopeo's oci-archive). One OCI layer per Strata \
            layer, lowest first: software, configuration, the generated dpkg database, the private changes. \
            Deletions are .wh.NAME members, opaque directories .wh..wh..opq; each layer descriptor names its \
            layer in the annotations \(OCI.layerNameAnnotation), \(OCI.layerVersionAnnotation) and \
            \(OCI.layerKindAnnotation). The same SOURCE gives the same digests. Prints the manifest digest \
            first, then one 'name version kind digest' line per layer.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "An LDF, vlfs:NAME, or an image reference.") var source: String
    @Argument(help: "The layout directory, or ARCHIVE.tar.") var destination: String
    @Option(help: "The image's tag in the layout's index (org.opencontainers.image.ref.name).") var tag = "latest"

    func run() throws {
        let result = try OCIExport(home: options.strataHome).run(source: source, destination: destination, tag: tag)
        print(result.manifest)
        for layer in result.layers { print("\(layer.name) \(layer.version) \(layer.kind) \(layer.digest)") }
    }
}

struct ImportOCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci",
        abstract: "Make a layer of each layer of an OCI image, and an LDF of the image.",
        discussion: """
            SOURCE is an OCI image layout directory or a tar of one. Each OCI layer becomes a configuration \
            layer of REPO (OCI layers overlap and delete each other's files, as configuration layers may): \
            .wh.NAME members delete from the layers below, .wh..wh..opq makes its directory opaque. Layers \
            Strata exported keep their names and versions (and a unit REPO already has with the same files is \
            used as it is); others are named NAME-layerN. The image is untrusted: members that would leave \
            the tree or pass through a link, and sizes past the limits, are refused, naming the archive and \
            the member. Prints the manifest digest first, then one 'name version digest' line per layer, lowest first.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The layout directory or archive.") var source: String
    @Option(help: "The local repository (by name in the home) for the layers.") var repo: String
    @Option(help: "The LDF to write (its layers held at their versions, topmost first).") var ldf: String?
    @Option(help: "Which image of the layout (its tag), when it has several.") var tag: String?
    @Option(help: "The name prefix of layers without Strata annotations (default: the LDF's or the source's name).") var name: String?

    func run() throws {
        let base = name ?? (((ldf ?? source) as NSString).lastPathComponent as NSString).deletingPathExtension
        let result = try OCIImport(home: options.strataHome, repositoryName: repo).run(source: source, tag: tag, name: base, ldf: ldf)
        print(result.manifest)
        for layer in result.layers {
            print("\(layer.name) \(layer.version) \(layer.digest)\(result.reused.contains(layer.name) ? " (already in \(repo))" : "")")
        }
        if let ldf { print("wrote \(ldf)") }
    }
}
