import Foundation
import StrataLayers

/// Why a job was given to the solver, to explain problems in the LDF's terms.
enum JobOrigin {
    /// An explicit layer of the LDF or a template; `exact` when its version must be the one named.
    case request(ExpandedLDF.LocatedEntry, exact: Bool)
    /// A base layer, always included.
    case base(String)
}

/// Resolves LDFs with libsolv over the repositories they name (DESIGN §7).
///
/// The pool holds the repositories named by the LDF's lines (and its templates'), in the order of
/// the home's `repositories` file, earlier lines winning. The explicit layers are installed, held
/// ones at their version; the base layers of those repositories (Essential layers; for Debian also
/// the Priority: required set) always are; current versions are favored so that re-resolving only
/// changes what must change; and nothing is installed that nothing needs, which drops orphans.
public struct Resolver {
    public let home: StrataHome

    public init(home: StrataHome) {
        self.home = home
    }

    /// - Parameters:
    ///   - expanded: the LDF with its templates.
    ///   - implicit: the current implicit block: versions kept where they still satisfy.
    ///   - upgrading: layers moved to the newest versions offered (held layers never move).
    ///   - exact: layers whose explicit version must be the one named this time (just added with
    ///     `=VERSION`), as if held.
    public func resolve(expanded: ExpandedLDF, current implicit: [LDFEntry], upgrading: UpgradeScope = .none,
                        exact: Set<String> = []) throws -> Resolution {
        let currentSources = implicit.map { ExpandedLDF.Source(file: expanded.file, line: expanded.root.lineNumber(ofLayer: $0.layer) ?? 0) }
        let pool = try LayerPool(repositories: try repositories(for: expanded.entries.map { ($0.entry, $0.source) } + Array(zip(implicit, currentSources))),
                                 home: home)
        let solv = pool.solv

        var jobs: [SolvJob] = []
        var origins: [JobOrigin] = []
        var roots: [SolvableID] = []
        var kept: [SolvableID] = []
        for located in expanded.entries {
            let entry = located.entry
            let units = try installableUnits(of: entry, at: located.source, in: pool)
            let named = entry.version.flatMap { version in units.first { pool.version($0) == version } }
            if entry.held || exact.contains(entry.layer) {
                guard let named else {
                    let offered = units.map { solv.version($0) }.joined(separator: ", ")
                    throw ParseError(file: located.source.file, line: located.source.line,
                                     message: "\(entry.repository)/\(entry.layer) \(entry.version!) is not in repository '\(entry.repository)' (it offers \(offered))")
                }
                jobs.append(.installOne(of: [named]))
                origins.append(.request(located, exact: true))
                roots.append(named)
            } else {
                jobs.append(.installOne(of: units))
                origins.append(.request(located, exact: false))
                if let named, !upgrading.includes(entry.layer) {
                    kept.append(named)
                    roots.append(named)
                } else {
                    roots.append(pool.best(units)!)
                }
            }
        }
        for name in Set(pool.baseNames.values.joined()).sorted() {
            let units = solv.units(named: name).filter(solv.isInstallable)
            guard let best = pool.best(units) else { continue }
            jobs.append(.installOne(of: units))
            origins.append(.base(name))
            roots.append(best)
        }
        let explicitNames = Set(expanded.entries.map(\.entry.layer))
        for entry in implicit where !explicitNames.contains(entry.layer) {
            let units = pool.units(of: entry.layer, in: entry.repository).filter(solv.isInstallable)
            if upgrading.includes(entry.layer) {
                if let newest = pool.best(units) { kept.append(newest) }
            } else if let current = units.first(where: { pool.version($0) == entry.version }) {
                kept.append(current)
            }
        }

        // libsolv takes favors as hints only, and after solving it "minimizes": of `a | b`, it
        // switches to b when b is installed anyway (a's own dependency, say), where apt keeps a. So
        // the apt-like choices are asked for as weak jobs, which libsolv drops where they conflict;
        // a choice left needed by nothing (its dependant's choice was dropped) is dropped in turn.
        // Favor jobs steer what remains: later ones win; the current versions come first as one
        // group, then the apt-like choices, first decision last.
        let preferences = AptPreference(pool: pool).favorGroups(roots: roots, kept: kept)
        var favors: [SolvJob] = []
        for group in [kept] + preferences.reversed() where !group.isEmpty { favors.append(.favor(group)) }
        var choices = preferences.filter { $0.count == 1 }.map(\.[0])
        let requested = Set(roots.map(solv.nameID))
        for _ in 0..<4 {
            guard case .solved(let units) = solv.solve(jobs + choices.map(SolvJob.installIfPossible) + favors) else { break }
            let unneeded = Set(units).subtracting(AptPreference(pool: pool).reached(from: requested, in: units))
            if unneeded.isDisjoint(with: choices) { return resolution(of: units, pool: pool, expanded: expanded) }
            choices.removeAll(where: unneeded.contains)
        }
        switch solv.solve(jobs + favors) {
        case .unsolvable(let problems):
            throw ResolutionError(description: ProblemExplanation(pool: pool, origins: origins, expanded: expanded)
                .explain(problems))
        case .solved(let units):
            return resolution(of: units, pool: pool, expanded: expanded)
        }
    }

    /// The repositories the entries name, in the home's order, each checked to exist.
    private func repositories(for entries: [(LDFEntry, ExpandedLDF.Source)]) throws -> [(name: String, location: RepositoryLocation)] {
        let configured = try home.repositories()
        var needed: Set<String> = []
        for (entry, source) in entries where !needed.contains(entry.repository) {
            guard configured.contains(where: { $0.name == entry.repository }) else {
                throw ParseError(file: source.file, line: source.line,
                                 message: "unknown repository '\(entry.repository)': not named in \(home.repositoriesFile) (add it with 'strata repo add')")
            }
            needed.insert(entry.repository)
        }
        return try configured.filter { needed.contains($0.name) }.map { configured in
            (configured.name, configured.location == "debian" ? .debian : .local(path: try home.repository(configured.name).path))
        }
    }

    private func installableUnits(of entry: LDFEntry, at source: ExpandedLDF.Source, in pool: LayerPool) throws -> [SolvableID] {
        let all = pool.units(of: entry.layer, in: entry.repository)
        let units = all.filter(pool.solv.isInstallable)
        if units.isEmpty {
            let why = all.isEmpty ? "no layer '\(entry.layer)' in repository '\(entry.repository)'"
                : "layer '\(entry.layer)' in repository '\(entry.repository)' is only built for \(Set(all.map(pool.solv.architecture)).sorted().joined(separator: ", ")), not \(pool.architecture)"
            throw ParseError(file: source.file, line: source.line, message: why)
        }
        return units
    }

    private func resolution(of units: [SolvableID], pool: LayerPool, expanded: ExpandedLDF) -> Resolution {
        let solv = pool.solv
        let held = Set(expanded.entries.filter(\.entry.held).map(\.entry.layer))
        let explicit = Set(expanded.entries.map(\.entry.layer))
        let ordered = solv.installOrder(units)
        return Resolution(units: ordered.map { unit in
            let source = pool.source(unit)
            let location = pool.repositories.first { $0.name == source.repository }!.location
            let preDepends = solv.requirements(unit).filter(\.preDepends)
                .flatMap { solv.alternatives($0.dependency).map(solv.targetName) }
            return ResolvedUnit(entry: pool.entry(unit, held: held.contains(solv.name(unit))), architecture: solv.architecture(unit),
                                location: location, record: source.record, debSHA256: location == .debian ? solv.sha256(unit) : nil,
                                isExplicit: explicit.contains(solv.name(unit)), preDepends: preDepends)
        })
    }
}
