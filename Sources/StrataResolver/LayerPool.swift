import Foundation
import StrataLayers
import StrataStore

/// Where a named repository's layers come from.
public enum RepositoryLocation: Hashable, Sendable {
    /// A Strata repository directory (for a served repository, its mirror).
    case local(path: String)
    /// The machine's configured apt sources; units become layers on first use (`DebianArchive`).
    case debian
}

/// What the pool knows about one solvable beyond libsolv: where it comes from and its metadata.
struct UnitSource {
    var repository: String
    /// The index row, for units of local repositories.
    var record: LayerRecord?
    /// The parsed metadata of local units, to tell Breaks from Conflicts in explanations.
    var metadata: LayerMetadata?
}

/// The libsolv pool built from the layer indexes of named repositories, in priority order: a unit
/// of an earlier repository wins over one of a later repository when both could be chosen.
final class LayerPool {
    let solv: SolvPool
    let architecture: String
    /// Repository names in priority order, with their locations.
    let repositories: [(name: String, location: RepositoryLocation)]
    /// Base layers by repository: Essential layers, and for Debian also the Priority: required set.
    private(set) var baseNames: [String: [String]] = [:]
    /// Index rows and metadata of local units (Debian units have none until imported).
    private var localSources: [SolvableID: UnitSource] = [:]

    init(repositories: [(name: String, location: RepositoryLocation)], home: StrataHome) throws {
        architecture = try machineArchitecture()
        solv = SolvPool(architecture: architecture)
        self.repositories = repositories
        for (index, (name, location)) in repositories.enumerated() {
            let priority = Int32(repositories.count - index)
            switch location {
            case .local(let path):
                try addLocal(name: name, path: path, priority: priority)
            case .debian:
                let index = try DebianArchive(home: home).loadIndex(into: solv, name: name, priority: priority, architecture: architecture)
                baseNames[name] = index.baseNames
            }
        }
        solv.prepare()
    }

    private func addLocal(name: String, path: String, priority: Int32) throws {
        let records = try Repository(at: path).layers()
        var text = ""
        var metadata: [LayerMetadata] = []
        for record in records {
            let parsed = try record.parsedMetadata()
            metadata.append(parsed)
            text += parsed.packagesStanza + "\n"
        }
        let repository = try solv.addRepository(name: name, priority: priority, packages: Array(text.utf8))
        let units = repository.solvables
        guard units.count == records.count else {
            throw LayerError("\(path): libsolv read \(units.count) of \(records.count) layer units from the index")
        }
        for (unit, (record, parsed)) in zip(units, zip(records, metadata)) {
            localSources[unit] = UnitSource(repository: name, record: record, metadata: parsed)
        }
        baseNames[name] = Array(Set(metadata.filter(\.essential).map(\.name))).sorted()
    }

    func source(_ unit: SolvableID) -> UnitSource {
        localSources[unit] ?? UnitSource(repository: solv.repositoryName(unit))
    }

    /// The units of `layer` in `repository`, oldest first.
    func units(of layer: String, in repository: String) -> [SolvableID] {
        solv.units(named: layer).filter { solv.repositoryName($0) == repository }
            .sorted { solv.compareVersions($0, $1) < 0 }
    }

    func version(_ unit: SolvableID) -> DebianVersion {
        // libsolv keeps the version text it was given, which was a valid Debian version.
        (try? DebianVersion(solv.version(unit)))!
    }

    /// `main/perl 5.36.0-7`
    func describe(_ unit: SolvableID) -> String {
        "\(source(unit).repository)/\(solv.name(unit)) \(solv.version(unit))"
    }

    func entry(_ unit: SolvableID, held: Bool = false) -> LDFEntry {
        LDFEntry(repository: source(unit).repository, layer: solv.name(unit), version: version(unit), held: held)
    }

    /// The candidate apt would take among units of one layer: highest repository priority, then newest.
    func best(_ units: [SolvableID]) -> SolvableID? {
        units.max { a, b in
            let (pa, pb) = (solv.priority(a), solv.priority(b))
            return pa != pb ? pa < pb : solv.compareVersions(a, b) < 0
        }
    }
}

extension LayerMetadata {
    /// The fields resolution reads, as a Packages stanza for libsolv's Debian parser.
    var packagesStanza: String {
        var lines = ["Package: \(name)", "Version: \(version)", "Architecture: \(architecture)"]
        if let multiArch { lines.append("Multi-Arch: \(multiArch)") }
        func alternatives(_ list: [[Relation]]) -> String {
            list.map { $0.map(\.description).joined(separator: " | ") }.joined(separator: ", ")
        }
        let fields = [("Depends", alternatives(depends)), ("Pre-Depends", alternatives(preDepends)),
                      ("Conflicts", alternatives(conflicts.map { [$0] })), ("Breaks", alternatives(breaks.map { [$0] })),
                      ("Replaces", alternatives(replaces.map { [$0] })), ("Provides", alternatives(provides.map { [$0] }))]
        for (field, value) in fields where !value.isEmpty { lines.append("\(field): \(value)") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The machine's dpkg architecture (`amd64`), which with `all` is what the pool may install.
func machineArchitecture() throws -> String {
    let output = try runProgram("/usr/bin/dpkg", ["--print-architecture"])
    let architecture = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !architecture.isEmpty else { throw LayerError("dpkg --print-architecture printed nothing") }
    return architecture
}
