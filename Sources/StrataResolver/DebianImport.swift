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
        try ensureImported([unit])[0]
    }

    /// The layer units of these Debian packages, in order, as `ensureImported` makes one: the missing
    /// `.deb`s are fetched by one `apt-get download` (apt fetches them in parallel; a call a package
    /// costs seconds of apt's start-up each), then each is checked and imported. `progress` hears of
    /// each import.
    public func ensureImported(_ units: [ResolvedUnit], progress: (Int, ResolvedUnit) -> Void = { _, _ in }) throws -> [LayerRecord] {
        if let other = units.first(where: { $0.location != .debian }) {
            throw LayerError("\(other.entry) is not a Debian package")
        }
        let repository = try repository()
        var missing: [ResolvedUnit] = []
        for unit in units where try repository.find(unit.name, version: unit.version.description) == nil {
            guard unit.debSHA256 != nil else {
                throw LayerError("\(unit.entry): the apt index states no SHA-256 for it, so a download could not be checked")
            }
            if !missing.contains(unit) { missing.append(unit) }
        }
        var downloads: [ResolvedUnit: String] = [:]
        let directory = missing.isEmpty ? nil : try temporaryDirectory()
        defer { if let directory { try? removeTree(directory) } }
        if let directory {
            _ = try runProgram("/usr/bin/apt-get", ["download", "-q"] + missing.map { "\($0.name)=\($0.version)" }, directory: directory)
            // apt names each file NAME_VERSION_ARCH.deb, the epoch's ':' written '%3a'.
            let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".deb") }
            for unit in missing {
                let version = unit.version.description.replacingOccurrences(of: ":", with: "%3a")
                guard let file = files.first(where: { $0.hasPrefix("\(unit.name)_\(version)_") }) else {
                    throw LayerError("apt-get download \(unit.name)=\(unit.version) fetched no .deb")
                }
                downloads[unit] = directory + "/" + file
            }
        }
        var records: [LayerRecord] = []
        for (index, unit) in units.enumerated() {
            progress(index, unit)
            if let record = try repository.find(unit.name, version: unit.version.description) {
                records.append(record)
                continue
            }
            guard let path = downloads[unit] else { throw LayerError("\(unit.entry): was not downloaded") }
            let actual = try sha256(ofFileAt: path)
            guard actual == unit.debSHA256 else {
                throw LayerError("\(path): SHA-256 is \(actual), but the apt index states \(unit.debSHA256 ?? "") for \(unit.name) \(unit.version); not imported")
            }
            records.append(try repository.importLayer(from: path))
        }
        return records
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
