import ArgumentParser
import Foundation
import Logging
import StrataHTTP
import StrataLayers
import StrataResolver
import StrataServer
import StrataStore

struct RepoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repo", abstract: "Create and name layer repositories.",
        subcommands: [Init.self, Add.self, List.self, Update.self, Reindex.self, Index.self, Serve.self, Key.self, Sign.self])

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
            discussion: """
                LOCATION is a path, an http:// or https:// URL of a repository served as static files (its index is \
                fetched now into $STRATA_HOME/mirrors/NAME; layers' objects are fetched when first needed), \
                or 'debian' for the machine's apt sources.

                With --key (or a key already in $STRATA_HOME/keys/NAME.pub), the served index must be \
                signed by that key ('strata repo sign'): every fetch of it checks index.sig, and the \
                key is kept in the home's keyring. Without a key the index is accepted as served, \
                unauthenticated.
                """)
        @OptionGroup var options: HomeOptions
        @Argument var name: String
        @Argument var location: String
        @Option(help: "The public key that must sign a served repository's index: a key file, or its 'strata-ed25519 …' line.")
        var key: String?
        @Option(name: .customLong("expect-name"), help: "The repository name the signature must carry (default: the first one accepted).")
        var expectName: String?
        @Option(help: "For https: a PEM file of the certificate authorities to trust for this repository instead of the system's (copied into the mirror).")
        var ca: String?
        @Option(help: "For https: the server's public key, pinned (a PEM or DER file, or sha256//BASE64).")
        var pin: String?

        func run() throws {
            let home = options.strataHome
            var resolved = location
            if HTTPLocation.isRemote(location) {
                try StrataHome.checkName(name)
                resolved = try HTTPLocation(location).description
                let trusted = try key.map(Self.publicKey)
                let trust = try trusted.map { IndexTrust(name: name, key: $0, expectedName: expectName) }
                    ?? home.trust(of: name, expectedName: expectName)
                let mirror = try RepositoryMirror.open(resolved, at: home.mirrorPath(of: name), trust: trust, caFile: ca, pin: pin)
                if let trusted {
                    // A mirror kept from before holds an index accepted under another key, or none.
                    try RepositoryMirror.refreshIndex(of: mirror, trust: trust)
                    try home.trustKey(trusted, of: name)
                }
            } else if key != nil || expectName != nil || ca != nil || pin != nil {
                throw ValidationError("--key, --expect-name, --ca and --pin are for served repositories; a local one is read as it is")
            } else if location != "debian" {
                resolved = URL(fileURLWithPath: location).standardizedFileURL.path
                _ = try Repository(at: resolved)
            }
            try home.addRepository(name: name, location: resolved)
        }

        /// A key file's public key, or the key line given in place of a file.
        static func publicKey(_ argument: String) throws -> Ed25519.PublicKey {
            if argument.hasPrefix("strata-ed25519 ") { return try SigningKey.parsePublic(argument, file: "--key") }
            return try SigningKey.readPublic(argument)
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch the index of served repositories again, where it changed.",
            discussion: "Without arguments, updates every repository the Strata home names by URL. Prints one line per repository.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository names.") var names: [String] = []

        func run() throws {
            let home = options.strataHome
            let served = try home.repositories().filter { HTTPLocation.isRemote($0.location) }
            for name in names where !served.contains(where: { $0.name == name }) {
                throw LayerError("'\(name)' is not a repository the Strata home names by URL")
            }
            for repository in served where names.isEmpty || names.contains(repository.name) {
                let mirror = try home.repository(repository.name)
                let changed = try RepositoryMirror.refreshIndex(of: mirror, trust: try home.trust(of: repository.name))
                print("\(repository.name)\t\(changed ? "updated" : "unchanged")\t\(try home.repository(repository.name).layers().count) layers")
            }
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
                : try options.repository(repository).layers().count
            print(count)
        }
    }

    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve a repository read-only over HTTP, as static files, for quick local use.",
            discussion: """
                Answers GET and HEAD for the repository's files (strata-repository, index.sqlite, \
                objects/sha256/…), with Content-Length, ETags and single byte ranges; no listings, and \
                nothing outside PATH (no '..', no symbolic links). Prints the URL on the first line of \
                stdout (useful with port 0), then logs one line per request on stderr. Runs until \
                interrupted. Bounded: --connections served at once (more wait to be accepted), request \
                heads of at most 16 KiB, no request bodies, and a client idle or not reading for \
                --timeout seconds loses its connection. For production, serve the directory with nginx \
                (docs/serving.md).
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The repository's directory, or its name in the Strata home.") var path: String
        @Option(help: "HOST:PORT, :PORT (every interface) or [IPv6]:PORT; port 0 picks a free port.") var listen = "127.0.0.1:8080"
        @Option(name: .customLong("limit-rate"), help: "Bytes per second per response (0: no limit).") var limitRate = 0
        @Option(help: "Connections served at once.") var connections = 256
        @Option(help: "Seconds a connection may stay idle, or a client may not read its response.") var timeout = 30
        @Flag(help: "Do not log requests.") var quiet = false

        func validate() throws {
            guard limitRate >= 0 else { throw ValidationError("--limit-rate must be 0 or more") }
            guard connections > 0 else { throw ValidationError("--connections must be at least 1") }
            guard timeout > 0 else { throw ValidationError("--timeout must be at least 1") }
        }

        func run() throws {
            let repository = try options.repository(path)
            if let origin = repository.origin {
                throw LayerError("'\(path)' is a mirror of \(origin), holding only what was fetched; serve the repository there")
            }
            var limits = HTTPServer.Limits()
            limits.connections = connections
            limits.idleTimeout = .seconds(timeout)
            limits.stalledWriteTimeout = .seconds(timeout)
            limits.rateLimit = limitRate
            var logger = Logger(label: "strata") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = quiet ? Logger.Level.error : .info
            var server = try HTTPServer(listen: listen, limits: limits, logger: logger)
            try server.serveDirectory(repository.path)
            try server.run { address in FileHandle.standardOutput.write(Data("http://\(address)/\n".utf8)) }
        }
    }
}
