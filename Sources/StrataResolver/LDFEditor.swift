import Foundation
import StrataLayers
import StrataStore

/// A layer named on the command line: `REPO/NAME`, `REPO/NAME=VERSION`, or `NAME[=VERSION]`.
public struct LayerReference: Sendable, CustomStringConvertible {
    public var repository: String?
    public var name: String
    public var version: DebianVersion?

    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let path = parts[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard path.count <= 2, !path.contains(where: \.isEmpty), parts.count == 1 || !parts[1].isEmpty else {
            throw LDFEditError(message: "expected REPO/NAME, REPO/NAME=VERSION or NAME, found '\(text)'")
        }
        repository = path.count == 2 ? path[0] : nil
        name = path.last!
        do { version = parts.count == 2 ? try DebianVersion(parts[1]) : nil } catch let error as ParseError {
            throw LDFEditError(message: "'\(text)': \(error.message)")
        }
    }

    public var description: String {
        (repository.map { $0 + "/" } ?? "") + name + (version.map { "=\($0)" } ?? "")
    }
}

/// An edit of an LDF's explicit block, resolved and written in one step.
public enum LDFEdit: Sendable {
    case none
    case add([LayerReference])
    case remove([LayerReference])
    case hold([LayerReference])
    case unhold([LayerReference])
    /// Moves the given unheld layers, or every unheld layer when empty, to the newest versions offered.
    case upgrade([LayerReference])
}

/// An LDF after an edit and resolution, ready to be written.
public struct ResolvedLDF: Sendable {
    public var path: String
    public var text: String
    public var resolution: Resolution
    /// One line per layer that comes, goes or changes version: `+ main/perl 5.36.0-7`,
    /// `- main/tcpd 7.6-8`, `~ main/mailx 3a8.1.2-4 -> 3a8.1.2-5`.
    public var changes: [String]

    /// Replaces the file atomically: readers see the old LDF or the new one, never a mix.
    public func write() throws {
        try AtomicFile.write(text, to: path)
    }
}

/// Edits and resolves LDFs: the library behind `strata ldf resolve|add|remove|hold|unhold|upgrade`.
public struct LDFEditor {
    public let home: StrataHome

    public init(home: StrataHome) {
        self.home = home
    }

    /// Applies `edit` to the LDF at `path` and resolves the result. Nothing is written: call
    /// `write()` on the result. Throws, leaving the file as it was, if the edit or the resolution
    /// fails.
    public func apply(_ edit: LDFEdit, to path: String) throws -> ResolvedLDF {
        let url = URL(fileURLWithPath: path)
        let display = url.relativePath.hasPrefix("./") ? String(url.relativePath.dropFirst(2)) : url.relativePath
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ParseError(file: display, line: nil, message: "cannot read: \(error.localizedDescription)")
        }
        let original = try LDF.parse(text, file: display)
        var ldf = original
        var upgrading = UpgradeScope.none
        var exact: Set<String> = []
        switch edit {
        case .none:
            break
        case .add(let references):
            for reference in references {
                let repository = try repositoryName(for: reference, in: ldf)
                try ldf.addExplicit(LDFEntry(repository: repository, layer: reference.name, version: reference.version))
                if reference.version != nil { exact.insert(reference.name) }
            }
        case .remove(let references):
            for reference in references {
                let repository = try repositoryName(for: reference, in: ldf)
                guard ldf.removeExplicit(repository: repository, layer: reference.name) else {
                    throw LDFEditError(message: notExplicit(reference, repository, ldf, display))
                }
            }
        case .hold(let references):
            for reference in references {
                let repository = try repositoryName(for: reference, in: ldf)
                if try !ldf.hold(repository: repository, layer: reference.name, version: reference.version) {
                    guard let version = reference.version else {
                        throw LDFEditError(message: "\(display) has no entry for \(repository)/\(reference.name): give the version to hold (\(repository)/\(reference.name)=VERSION)")
                    }
                    try ldf.addExplicit(LDFEntry(repository: repository, layer: reference.name, version: version, held: true))
                }
                if reference.version != nil { exact.insert(reference.name) }
            }
        case .unhold(let references):
            for reference in references {
                let repository = try repositoryName(for: reference, in: ldf)
                guard ldf.unhold(repository: repository, layer: reference.name) else {
                    throw LDFEditError(message: notExplicit(reference, repository, ldf, display))
                }
            }
        case .upgrade(let references):
            upgrading = .all
            if !references.isEmpty {
                for reference in references {
                    let repository = try repositoryName(for: reference, in: ldf)
                    if ldf.explicitEntries.contains(where: { $0.layer == reference.name && $0.repository == repository && $0.held }) {
                        throw LDFEditError(message: "\(repository)/\(reference.name) is held in \(display); unhold it to upgrade it")
                    }
                }
                upgrading = .layers(Set(references.map(\.name)))
            }
        }

        let expanded = try home.loadExpanded(path, edited: ldf)
        // An LDF without an implicit block of its own (an appliance's `@TEMPLATE`) keeps its templates' versions.
        let resolution = try Resolver(home: home).resolve(expanded: expanded, current: expanded.implicitEntries.map(\.entry),
                                                          upgrading: upgrading, exact: exact)
        for entry in ldf.explicitEntries {
            guard let unit = resolution.unit(named: entry.layer), unit.entry.repository == entry.repository else { continue }
            var resolved = entry
            resolved.version = unit.version
            if resolved.version?.description != entry.version?.description { try ldf.addExplicit(resolved) }
        }
        try ldf.setImplicit(resolution.implicitEntries)
        return ResolvedLDF(path: path, text: ldf.render(), resolution: resolution,
                           changes: Self.changes(from: original.explicitEntries + original.implicitEntries,
                                                 to: ldf.explicitEntries + ldf.implicitEntries))
    }

    /// The repository a reference means: the one it names; else the one of the LDF's entry for the
    /// layer; else the only repository configured.
    private func repositoryName(for reference: LayerReference, in ldf: LDF) throws -> String {
        if let repository = reference.repository { return repository }
        if let entry = (ldf.explicitEntries + ldf.implicitEntries).first(where: { $0.layer == reference.name }) {
            return entry.repository
        }
        let configured = try home.repositories()
        guard configured.count == 1 else {
            throw LDFEditError(message: "'\(reference)': name the repository (REPO/\(reference.name)); \(configured.isEmpty ? "none is configured in \(home.repositoriesFile)" : "\(configured.count) are configured")")
        }
        return configured[0].name
    }

    private func notExplicit(_ reference: LayerReference, _ repository: String, _ ldf: LDF, _ file: String) -> String {
        if ldf.implicitEntries.contains(where: { $0.layer == reference.name }) {
            return "\(repository)/\(reference.name) is in the implicit block of \(file): the resolver added it, and drops it when nothing needs it"
        }
        return "\(file) has no explicit entry for \(repository)/\(reference.name)"
    }

    static func changes(from old: [LDFEntry], to new: [LDFEntry]) -> [String] {
        let before = Dictionary(old.map { ($0.layer, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.map { ($0.layer, $0) }, uniquingKeysWith: { first, _ in first })
        var lines: [String] = []
        for layer in Set(before.keys).union(after.keys).sorted() {
            switch (before[layer], after[layer]) {
            case (nil, let added?):
                lines.append("+ \(added.repository)/\(layer) \(added.version.map(\.description) ?? "")")
            case (let removed?, nil):
                lines.append("- \(removed.repository)/\(layer) \(removed.version.map(\.description) ?? "")")
            case (let was?, let now?) where was.version?.description != now.version?.description || was.repository != now.repository:
                lines.append("~ \(now.repository)/\(layer) \(was.version.map(\.description) ?? "(none)") -> \(now.version.map(\.description) ?? "")")
            default:
                break
            }
        }
        return lines
    }
}
