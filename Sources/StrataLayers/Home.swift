import Foundation
import StrataHTTP
import StrataStore

/// The Strata home (`$STRATA_HOME`, default `/var/lib/strata`): the configuration naming repositories,
/// the state of every VLFS, and the catalog.
public struct StrataHome: Sendable {
    public let path: String

    public static let defaultPath = "/var/lib/strata"

    /// `explicit` (from `--home`) wins over `$STRATA_HOME`, which wins over the default.
    public init(explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = explicit ?? environment["STRATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultPath
    }

    public var repositoriesFile: String { path + "/repositories" }

    /// Repository names and locations, from `repositories`: one `NAME LOCATION` a line, `#` comments.
    public func repositories() throws -> [(name: String, location: String)] {
        guard FileManager.default.fileExists(atPath: repositoriesFile) else { return [] }
        let text = try String(contentsOfFile: repositoriesFile, encoding: .utf8)
        var result: [(String, String)] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw ParseError(file: repositoriesFile, line: index + 1, message: "expected 'NAME LOCATION', found '\(raw)'")
            }
            try Self.checkName(fields[0], file: repositoriesFile, line: index + 1)
            result.append((fields[0], fields[1]))
        }
        return result
    }

    public static func checkName(_ name: String, file: String = "command line", line: Int? = nil) throws {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        guard !name.isEmpty, name.unicodeScalars.allSatisfy(allowed.contains), name.first!.isLetter || name.first!.isNumber else {
            throw ParseError(file: file, line: line, message: "invalid repository name '\(name)' (letters, digits, '-', '_' and '.')")
        }
    }

    /// Adds or replaces a repository name, rewriting the file atomically and keeping its comments.
    public func addRepository(name: String, location: String) throws {
        try Self.checkName(name)
        let existing = try repositories()
        try makeDirectories(path)
        var lines = FileManager.default.fileExists(atPath: repositoriesFile)
            ? try String(contentsOfFile: repositoriesFile, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            : ["# Strata repositories: NAME LOCATION (a path, an http(s):// URL, or 'debian')"]
        if lines.last == "" { lines.removeLast() }
        let entry = "\(name) \(location)"
        if existing.contains(where: { $0.name == name }) {
            lines = lines.map { line in line.split(whereSeparator: \.isWhitespace).first.map(String.init) == name ? entry : line }
        } else {
            lines.append(entry)
        }
        try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: repositoriesFile)
    }

    /// Where the public key trusted to sign the index of the repository named `name` is kept: the
    /// home's keyring, one `strata-ed25519 …` line a file (`strata repo add --key`, or put there).
    public func keyPath(of name: String) -> String { path + "/keys/" + name + ".pub" }

    /// What the home requires of the index of the served repository named `name`: nil when the home
    /// holds no key for it (its index is then accepted unauthenticated).
    public func trust(of name: String, expectedName: String? = nil) throws -> IndexTrust? {
        guard FileManager.default.fileExists(atPath: keyPath(of: name)) else { return nil }
        return IndexTrust(name: name, key: try SigningKey.readPublic(keyPath(of: name)), expectedName: expectedName)
    }

    /// Records `key` as the one trusted to sign the index of the repository named `name`.
    public func trustKey(_ key: Ed25519.PublicKey, of name: String) throws {
        try Self.checkName(name)
        try makeDirectories(path + "/keys")
        try AtomicFile.write(SigningKey.line(key) + "\n", to: keyPath(of: name))
    }

    /// Where the mirror of the repository named `name` (by URL) keeps its index copy and objects.
    public func mirrorPath(of name: String) -> String { path + "/mirrors/" + name }

    /// Where Debian packages become layer units, the first time an LDF needs them.
    public var debianRepositoryPath: String { path + "/debian" }

    /// The local repository behind a repository name or path — the one way every verb, resolution and
    /// mounting open a repository: a path (or a name for one) opens that directory; a name for an
    /// `http://` or `https://` URL opens its mirror under `mirrors/NAME`, made and its index fetched the first
    /// time (objects come later, with `Repository.fetchLayers`); a name for `debian` opens the
    /// repository of the Debian packages imported so far, made empty the first time.
    public func repository(_ nameOrPath: String) throws -> Repository {
        let location = try location(of: nameOrPath)
        if HTTPLocation.isRemote(location) {
            guard location != nameOrPath else {
                throw LayerError("\(location): name a served repository first ('strata repo add NAME \(location)'), then use its name")
            }
            do {
                return try RepositoryMirror.open(location, at: mirrorPath(of: nameOrPath), trust: try trust(of: nameOrPath))
            } catch let error as NetworkError {
                throw LayerError("repository '\(nameOrPath)' (\(location)): \(error)")
            }
        }
        return location == "debian" ? try debianRepository() : try Repository(at: location)
    }

    /// The repository of the Debian packages imported so far, made empty the first time.
    public func debianRepository() throws -> Repository {
        if FileManager.default.fileExists(atPath: debianRepositoryPath + "/" + Repository.marker) { return try Repository(at: debianRepositoryPath) }
        try makeDirectories(path)
        return try Repository.create(at: debianRepositoryPath)
    }

    /// The location of a repository given by name or path: a name in `repositories` first, then a path.
    public func location(of repository: String) throws -> String {
        if let match = try repositories().first(where: { $0.name == repository }) { return match.location }
        if repository.contains("/") || FileManager.default.fileExists(atPath: repository) { return repository }
        throw LayerError("unknown repository '\(repository)': not a path, and not named in \(repositoriesFile)")
    }
}

/// An error about layers or repositories, in words that name the layer, file or repository.
public struct LayerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
