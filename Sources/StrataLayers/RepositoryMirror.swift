import Foundation
import GRDB
import StrataHTTP
import StrataStore

/// The local mirror of a repository served over HTTP (any static file server will do): a repository
/// directory, `$STRATA_HOME/mirrors/NAME`, holding a copy of the served `index.sqlite`, the objects
/// fetched so far, and `origin`, the URL it mirrors. Everything reads it as a local repository;
/// `Repository.fetchLayers` fills in a layer's objects the first time the layer is needed.
///
/// The index is fetched when the mirror is made and refreshed on request (`strata repo update`).
/// Whether it changed is read from SQLite's own file header — the change counter and page count
/// (bytes 24–31), which every commit in rollback-journal mode updates — with a 100-byte range
/// request: exact, where ETags built from whole-second times and sizes miss quick successive
/// imports. The copy is checked to be an index before it replaces the old one, atomically.
///
/// A repository the home holds a key for (`IndexTrust`) publishes `index.sig` beside its index.
/// Then every fetch reads that small file first, instead of the header: an index is fetched only
/// when the signature changed, and accepted only when `IndexTrust` accepts the signature and the
/// index's digest is the signed one. The accepted signature is kept as the mirror's `index.sig`,
/// written after the index it signs, so a crash between the two leaves an old signature that
/// makes the next refresh fetch again, never a new signature over an old index.
public enum RepositoryMirror {
    static let originFile = "origin"
    /// The served index's header stamp when it was fetched.
    static let stampFile = "index.stamp"
    static let indexFile = "index.sqlite"
    /// A served index larger than this is refused: Debian's whole archive makes one of tens of MB.
    static let indexLimit: Int64 = 1 << 30
    /// A served `index.sig` larger than this is refused: a real one is a few hundred bytes.
    static let signatureLimit = 64 << 10

    /// The mirror of `url` at `path`, made (and its index fetched) the first time, or again when the
    /// name now points at another URL (objects fetched before stay: they are named by content), or
    /// when a key is now required and the mirror holds no index signed with one.
    /// `caFile` and `pin` (from `repo add --ca/--pin`) are kept in the mirror for every later fetch.
    public static func open(_ url: String, at path: String, trust: IndexTrust? = nil, caFile: String? = nil, pin: String? = nil) throws -> Repository {
        let location = try HTTPLocation(url)
        try MirrorTLS.save(caFile: caFile, pin: pin, in: path)
        if origin(at: path) == location.description, FileManager.default.fileExists(atPath: path + "/" + Repository.marker),
           trust == nil || FileManager.default.fileExists(atPath: path + "/" + IndexSignature.fileName) {
            return try Repository(at: path)
        }
        let client = HTTPClient(location: location, trust: try MirrorTLS.load(path))
        let (response, marker) = try client.get(Repository.marker, limit: 4096)
        guard response.status == 200, marker.starts(with: Array("\(Repository.marker) ".utf8)) else {
            throw LayerError("\(location.url(Repository.marker)): \(response.status == 200 ? "not a Strata repository marker" : "the server answered \(response.status) \(response.reason)"); is \(url) a Strata repository?")
        }
        try makeDirectories(path)
        _ = try ObjectStore(root: path, create: true)
        try? FileManager.default.removeItem(atPath: path + "/" + stampFile)
        try refreshIndex(at: path, from: location, client: client, trust: trust)
        try AtomicFile.write(location.description + "\n", to: path + "/" + originFile)
        try AtomicFile.write(marker, to: path + "/" + Repository.marker)
        return try Repository(at: path)
    }

    /// The URL a mirror at `path` copies, if it is one.
    static func origin(at path: String) -> String? {
        (try? String(contentsOfFile: path + "/" + originFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Fetches the served index again if it changed. Returns whether it did.
    @discardableResult
    public static func refreshIndex(of repository: Repository, trust: IndexTrust? = nil) throws -> Bool {
        guard let location = repository.origin else { throw LayerError("\(repository.path) is not a mirror of a served repository") }
        return try refreshIndex(at: repository.path, from: location, client: HTTPClient(location: location, trust: repository.tls), trust: trust)
    }

    @discardableResult
    private static func refreshIndex(at path: String, from location: HTTPLocation, client: HTTPClient, trust: IndexTrust?) throws -> Bool {
        let hasIndex = FileManager.default.fileExists(atPath: path + "/" + indexFile)
        var signature: (bytes: [UInt8], document: IndexSignature)?
        var response: HTTPClient.Response
        if let trust {
            // The serial accepted last binds even when its index has gone missing: no rollback by deletion.
            let accepted = try acceptedSignature(at: path)
            signature = try servedSignature(from: location, client: client, trust: trust, accepted: accepted?.document)
            if hasIndex, signature?.bytes == accepted?.bytes { return false }
            response = try client.send("GET", indexFile, limit: indexLimit)
        } else {
            let known = hasIndex ? try? String(contentsOfFile: path + "/" + stampFile, encoding: .utf8) : nil
            response = try client.send("GET", indexFile, range: RequestedRange(from: 0, through: 99), limit: indexLimit)
            if response.status == 206 {
                let header = try client.readWholeBody()
                if let known, stamp(ofHeader: header) == known { return false }
                response = try client.send("GET", indexFile, limit: indexLimit)
            }
        }
        guard response.status == 200 else {
            throw LayerError("\(location.url(indexFile)): the server answered \(response.status) \(response.reason)")
        }
        let download = "\(path)/.\(indexFile).download-\(getpid())"
        defer { unlink(download) }
        var hasher = SHA256()
        do {
            let file = try FileDescriptor.open(download, O_WRONLY | O_CREAT | O_TRUNC)
            var buffer = [UInt8](repeating: 0, count: 256 * 1024)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try client.readBody(into: $0) }
                if n == 0 { break }
                try buffer.withUnsafeBytes { chunk in
                    let part = UnsafeRawBufferPointer(rebasing: chunk[..<n])
                    hasher.update(part)
                    try file.write(part)
                }
            }
            try file.sync()
        }
        let digest = hasher.finalize()
        if let trust, let signature {
            try trust.checkIndex(digest, signedBy: signature.document, url: location.url(indexFile))
        }
        try checkIndex(download, from: location.url(indexFile))
        var header = [UInt8](repeating: 0, count: 100)
        let headerLength = try header.withUnsafeMutableBytes { try FileDescriptor.open(download, O_RDONLY).read(into: $0) }
        if signature == nil {
            // An index accepted unsigned is no longer the one a kept signature names.
            unlink(path + "/" + IndexSignature.fileName)
        }
        guard rename(download, path + "/" + indexFile) == 0 else { throw SystemError("rename", path + "/" + indexFile) }
        try AtomicFile.syncDirectory(path)
        if let signature { try AtomicFile.write(signature.bytes, to: path + "/" + IndexSignature.fileName) }
        try AtomicFile.write(stamp(ofHeader: Array(header.prefix(headerLength))) ?? "", to: path + "/" + stampFile)
        return true
    }

    /// The signature the mirror accepted with its index, if any.
    private static func acceptedSignature(at path: String) throws -> (bytes: [UInt8], document: IndexSignature)? {
        let file = path + "/" + IndexSignature.fileName
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        let bytes = try FileDescriptor.open(file, O_RDONLY).readAll(limit: signatureLimit)
        return (bytes, try IndexSignature(parsing: bytes, file: file))
    }

    /// The served `index.sig`, checked by `trust` against what the mirror accepted.
    private static func servedSignature(from location: HTTPLocation, client: HTTPClient, trust: IndexTrust,
                                        accepted: IndexSignature?) throws -> (bytes: [UInt8], document: IndexSignature) {
        let url = location.url(IndexSignature.fileName)
        let (response, bytes) = try client.get(IndexSignature.fileName, limit: signatureLimit)
        if response.status == 404 { throw trust.missingSignature(url) }
        guard response.status == 200 else { throw LayerError("\(url): the server answered \(response.status) \(response.reason)") }
        let document = try IndexSignature(parsing: bytes, file: url)
        try trust.check(document, accepted: accepted, url: url)
        return (bytes, document)
    }

    /// SQLite's change counter and page count, from the first 100 bytes of a database file.
    static func stamp(ofHeader header: [UInt8]) -> String? {
        guard header.count >= 32, header.starts(with: Array("SQLite format 3\0".utf8)) else { return nil }
        return header[24..<32].map { String(format: "%02x", $0) }.joined()
    }

    /// Refuses a download that is not a layer index (an error page, a truncated file).
    private static func checkIndex(_ file: String, from url: String) throws {
        let verdict: String
        do {
            var configuration = Configuration()
            configuration.readonly = true
            verdict = try DatabaseQueue(path: file, configuration: configuration).read { db in
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM layers")
                return try String.fetchOne(db, sql: "PRAGMA quick_check") ?? "no answer"
            }
        } catch {
            verdict = "\(error)"
        }
        guard verdict == "ok" else { throw LayerError("\(url): not a layer index (\(verdict)); the mirror keeps its previous index") }
    }
}
