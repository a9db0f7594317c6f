import ArgumentParser
import Foundation
import StrataLayers
import StrataResolver
import StrataStore

struct RepoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "Create and name layer repositories.",
        subcommands: [Init.self, Add.self, List.self, Reindex.self, Index.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an empty repository at PATH.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "A new or empty directory.") var path: String

        func run() throws {
            try Repository.create(at: path)
            print(path)
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Name a repository in the Strata home.",
            discussion: "LOCATION is a path, an http(s):// URL, or 'debian' for the machine's apt sources.")
        @OptionGroup var options: HomeOptions
        @Argument var name: String
        @Argument var location: String

        func run() throws {
            var resolved = location
            if !location.contains("://") && location != "debian" {
                resolved = URL(fileURLWithPath: location).standardizedFileURL.path
                _ = try Repository(at: resolved)
            }
            try options.strataHome.addRepository(name: name, location: resolved)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the repositories named in the Strata home.")
        @OptionGroup var options: HomeOptions
        @Flag(help: "Print JSON.") var json = false

        struct Item: Encodable { var name: String; var location: String }

        func run() throws {
            let items = try options.strataHome.repositories().map { Item(name: $0.name, location: $0.location) }
            if json { return try printJSON(items) }
            for item in items { print("\(item.name)\t\(item.location)") }
        }
    }

    struct Reindex: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rebuild a repository's index from the layer manifests in its store.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String

        func run() throws {
            let count = try options.repository(repository).rebuildIndex()
            print("\(count) layers indexed")
        }
    }

    struct Index: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a repository's layer index as resolution does; print how many layer units it offers.",
            discussion: """
                For 'debian', the index is the apt Packages files, cached as a libsolv .solv file in the \
                home; it is read again when the Packages files change, or always with --rebuild.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path.") var repository: String
        @Flag(help: "For debian: ignore the cache and read apt's Packages files.") var rebuild = false

        func run() throws {
            let location = try options.strataHome.location(of: repository)
            let count = location == "debian"
                ? try DebianArchive(home: options.strataHome).loadIndex(rebuild: rebuild)
                : try Repository(at: location).layers().count
            print(count)
        }
    }
}
