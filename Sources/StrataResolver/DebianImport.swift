import Foundation
import StrataLayers
import StrataStore

extension DebianArchive {
    /// The local repository holding imported Debian packages, created on first use.
    public func repository() throws -> Repository {
        try home.debianRepository()
    }

    /// The layer unit of a resolved Debian package, importing it the first time: the `.deb` is
    /// fetched with `apt-get download` (so apt's own sources, proxies and authentication apply),
    /// checked against the SHA-256 the apt index states, and imported into `repository()`.
    public func ensureImported(_ unit: ResolvedUnit) throws -> LayerRecord {
        guard unit.location == .debian else {
            throw LayerError("\(unit.entry) is not a Debian package")
        }
        let repository = try repository()
        if let record = try repository.find(unit.name, version: unit.version.description) { return record }
        guard let expected = unit.debSHA256 else {
            throw LayerError("\(unit.entry): the apt index states no SHA-256 for it, so a download could not be checked")
        }
        let directory = try temporaryDirectory()
        defer { try? removeTree(directory) }
        _ = try runProgram("/usr/bin/apt-get", ["download", "-q", "\(unit.name)=\(unit.version)"], directory: directory)
        guard let file = try FileManager.default.contentsOfDirectory(atPath: directory).first(where: { $0.hasSuffix(".deb") }) else {
            throw LayerError("apt-get download \(unit.name)=\(unit.version) fetched no .deb")
        }
        let path = directory + "/" + file
        let actual = try sha256(ofFileAt: path)
        guard actual == expected else {
            throw LayerError("\(path): SHA-256 is \(actual), but the apt index states \(expected) for \(unit.name) \(unit.version); not imported")
        }
        return try repository.importLayer(from: path)
    }

    /// The archive's units of exactly these package versions, by name, as `ensureImported` takes them;
    /// a package whose version the archive no longer has is absent.
    public func units(exactly wanted: [(name: String, version: String)]) throws -> [String: ResolvedUnit] {
        let architecture = try machineArchitecture()
        let pool = SolvPool(architecture: architecture)
        _ = try loadIndex(into: pool, name: "debian", priority: 1, architecture: architecture)
        pool.prepare()
        var found: [String: ResolvedUnit] = [:]
        for (name, version) in wanted {
            guard let id = pool.units(named: name).first(where: { pool.version($0) == version }) else { continue }
            found[name] = ResolvedUnit(entry: LDFEntry(repository: "debian", layer: name, version: try DebianVersion(version)), architecture: pool.architecture(id),
                                       location: .debian, record: nil, debSHA256: pool.sha256(id), isExplicit: false, preDepends: [])
        }
        return found
    }

    /// A download directory apt's unprivileged `_apt` user may write to.
    private func temporaryDirectory() throws -> String {
        try makeDirectories(cacheDirectory)
        let path = try StrataStore.temporaryDirectory(in: cacheDirectory, prefix: "download-")
        chmod(path, 0o777)
        return path
    }

    private func sha256(ofFileAt path: String) throws -> String {
        let file = try FileDescriptor.open(path, O_RDONLY)
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
        return hasher.finalize().hex
    }
}
