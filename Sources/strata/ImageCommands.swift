import ArgumentParser
import Foundation
import Mirage
import StrataStore

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "The Mirage image catalog: check in, check out, mount, compare and manage images.",
        discussion: """
            IMAGE is NAME (its default version), NAME@N (version N), NAME@TAG, or an image digest. \
            Images live in the home's catalog ($STRATA_HOME/catalog.sqlite) and store ($STRATA_HOME/store).
            """,
        subcommands: [Checkin.self, ImageSnapshot.self, Checkout.self, ImageMount.self, List.self, Log.self, Show.self, Delete.self, Tag.self, Default.self,
                      Grant.self, Revoke.self, ImageDiffCommand.self, ImageDeltaCommand.self, ImageApplyCommand.self])

    struct Checkin: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a directory or tarball in as a new version of a named image.",
            discussion: "Prints the image digest alone on the first line, then NAME@VERSION. The new version becomes the default.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "A directory or a tar archive.") var path: String
        @Option(help: "The named image to add a version to (created, owned by you, if new).") var name: String
        @Option(help: "The image this one derives from (default: the named image's current default version).") var parent: String?

        func run() throws {
            let catalog = try options.catalog()
            let parentDigest = try parent.map { try catalog.resolve(try ImageReference(parsing: $0)).digest }
            let version = try catalog.checkin(path: path, name: name, parent: parentDigest)
            print(version.digest)
            print(version.reference)
        }
    }

    struct Checkout: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write an image's filesystem to a new or empty directory, identical in content and metadata.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image.") var image: String
        @Argument(help: "A new or empty directory.") var directory: String

        func run() throws {
            let catalog = try options.catalog()
            try catalog.checkout(try catalog.resolve(try ImageReference(parsing: image), for: .checkout, by: .current), to: directory)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List named images with their default versions.")
        @OptionGroup var options: HomeOptions
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Include images whose versions are all deleted.") var all = false

        struct Row: Encodable {
            var name: String
            var owner: User
            var defaultVersion: Int?
            var defaultDigest: Digest?
            var versions: Int
            var activeVersions: Int
        }

        func run() throws {
            let catalog = try options.catalog()
            let rows = try catalog.namedImages(includeDeleted: all).map { image in
                Row(name: image.name, owner: image.owner, defaultVersion: image.defaultVersion,
                    defaultDigest: try image.defaultVersion.map { try catalog.resolve(.version(image.name, $0)).digest },
                    versions: image.versions, activeVersions: image.activeVersions)
            }
            if json { return try printJSON(rows) }
            for row in rows {
                let current = row.defaultVersion.map { "@\($0)\t\(row.defaultDigest!)" } ?? "\t(no active version)"
                print("\(row.name)\(current)\t\(row.activeVersions)/\(row.versions) versions active\towner \(row.owner.name)")
            }
        }
    }

    struct Log: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a named image's version chain, oldest first.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image name.") var name: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let versions = try options.catalog().versions(of: name)
            if json { return try printJSON(versions) }
            for version in versions {
                var marks = version.tags
                if version.isDefault { marks.insert("default", at: 0) }
                if version.state == .deleted { marks.append("deleted") }
                let parent = version.parent.map { "\tparent \($0)" } ?? ""
                print("\(version.reference)\t\(version.digest)\t\(formatDate(version.created))\t\(version.creator.name)\(marks.isEmpty ? "" : "\t" + marks.joined(separator: ","))\(parent)")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image version: its record, provenance, layers and access lists.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image.") var image: String
        @Flag(help: "Print JSON.") var json = false

        struct Description: Encodable {
            var version: ImageVersion
            var owner: User
            var checkout: [User]
            var checkin: [User]
            var filesystem: Digest
            var layers: [String]
            var privateLayer: Digest?
            var provenance: [String: String]
        }

        func run() throws {
            let catalog = try options.catalog()
            let version = try catalog.resolve(try ImageReference(parsing: image))
            let named = try catalog.namedImage(version.name)
            let manifest = version.state == .active ? try catalog.manifest(of: version) : nil
            let description = Description(version: version, owner: named.owner, checkout: named.checkout, checkin: named.checkin,
                                          filesystem: version.filesystem,
                                          layers: manifest?.layers.map { "\($0.repository)/\($0.name) \($0.version) \($0.layer)" } ?? [],
                                          privateLayer: manifest?.privateLayer?.digest, provenance: manifest?.provenance ?? [:])
            if json { return try printJSON(description) }
            print("image:      \(version.reference)\(version.isDefault ? " (default)" : "")")
            print("digest:     \(version.digest)")
            print("state:      \(version.state.rawValue)")
            print("created:    \(formatDate(version.created)) by \(version.creator)")
            print("parent:     \(version.parent?.description ?? "none")")
            print("filesystem: \(version.filesystem)")
            if !version.tags.isEmpty { print("tags:       \(version.tags.joined(separator: ", "))") }
            for layer in description.layers { print("layer:      \(layer)") }
            if let privateLayer = description.privateLayer { print("private:    \(privateLayer)") }
            for (key, value) in description.provenance.sorted(by: { $0.key < $1.key }) { print("provenance: \(key) = \(value)") }
            print("owner:      \(named.owner)")
            print("checkout:   \(named.checkout.map(\.name).joined(separator: ", "))")
            print("checkin:    \(named.checkin.map(\.name).joined(separator: ", "))")
        }
    }
}

extension HomeOptions {
    func catalog() throws -> Catalog { try Catalog(home: strataHome) }
}

func formatDate(_ date: Date) -> String {
    ISO8601DateFormatter().string(from: date)
}
