import StrataLayers

/// Puts libsolv's problems and proposed solutions in an administrator's words: layer units as
/// `repository/layer version`, requests as the LDF lines (`file:line`) that make them.
struct ProblemExplanation {
    let pool: LayerPool
    let origins: [JobOrigin]
    let expanded: ExpandedLDF

    func explain(_ problems: [SolvProblem]) -> String {
        var lines = ["cannot resolve \(expanded.file): \(problems.count == 1 ? "1 problem" : "\(problems.count) problems")"]
        for (number, problem) in problems.enumerated() {
            lines.append("problem \(number + 1):")
            var seen: Set<String> = []
            for rule in problem.rules {
                let sentence = describe(rule)
                if seen.insert(sentence).inserted { lines.append("  - " + sentence) }
            }
            if !problem.solutions.isEmpty { lines.append("  proposed solutions:") }
            for (index, solution) in problem.solutions.enumerated() {
                lines.append("    \(index + 1). " + solution.map(describe).joined(separator: "; and "))
            }
        }
        return lines.joined(separator: "\n")
    }

    private var solv: SolvPool { pool.solv }

    /// `main/foo 1.0-1 (app.ldf:3)` when LDF lines name this unit (its layer, at no version or at
    /// its version), else `main/foo 1.0-1`.
    private func unit(_ id: SolvableID) -> String {
        let name = solv.name(id), version = pool.version(id)
        func names(_ entry: LDFEntry) -> Bool { entry.layer == name && (entry.version == nil || entry.version == version) }
        var sites = expanded.entries.filter { names($0.entry) }.map(\.source.description)
        if expanded.root.implicitEntries.contains(where: names), let line = expanded.root.lineNumber(ofLayer: name) {
            sites.append("\(expanded.file):\(line)")
        }
        return pool.describe(id) + (sites.isEmpty ? "" : " (\(sites.joined(separator: ", ")))")
    }

    private func request(_ job: Int) -> String {
        guard origins.indices.contains(job) else { return "a preference of the resolver" }
        switch origins[job] {
        case .request(let located, let exact):
            let what = located.entry.held ? "held at \(located.entry.version!)" : exact ? "asked for at \(located.entry.version!)" : "asked for"
            return "\(located.entry.repository)/\(located.entry.layer) is \(what) in \(located.source)"
        case .base(let name):
            return "\(name) is a base layer, always included"
        }
    }

    private func describe(_ rule: SolvRule) -> String {
        switch rule {
        case .job(let job):
            return request(job)
        case .notInstallable(let id):
            return "\(unit(id)) is built for \(solv.architecture(id)), which this machine (\(pool.architecture)) cannot run"
        case .nothingProvides(let id, let dependency):
            return "\(unit(id)) \(relation(of: id, dependency)) \(solv.describe(dependency)), which no layer provides\(offered(dependency))"
        case .requires(let id, let dependency):
            return "\(unit(id)) \(relation(of: id, dependency)) \(solv.describe(dependency))"
        case .selfConflict(let id, let dependency):
            return "\(unit(id)) conflicts with \(solv.describe(dependency)), which it provides itself"
        case .conflicts(let id, let other, let dependency):
            return "\(unit(id)) \(conflictField(of: id, dependency)) \(solv.describe(dependency)), which \(unit(other)) is"
        case .sameName(let id, let other):
            return "\(unit(id)) and \(unit(other)) are two units of one layer: only one can be composed"
        case .other(let text):
            return text
        }
    }

    private func describe(_ element: SolvSolutionElement) -> String {
        switch element {
        case .dropJob(let job):
            guard origins.indices.contains(job) else { return "drop a preference of the resolver" }
            switch origins[job] {
            case .request(let located, let exact):
                let entry = located.entry
                if entry.held { return "release the hold on \(entry.repository)/\(entry.layer) (\(located.source)), or remove it" }
                if exact { return "ask for another version of \(entry.repository)/\(entry.layer) than \(entry.version!)" }
                return "remove \(entry.repository)/\(entry.layer) from \(located.source)"
            case .base(let name):
                return "leave out the base layer \(name)"
            }
        case .other(let text):
            return text
        }
    }

    /// "depends on" or "pre-depends on", as the unit's metadata says.
    private func relation(of id: SolvableID, _ dependency: DependencyID) -> String {
        let pre = solv.requirements(id).contains { $0.dependency == dependency && $0.preDepends }
        return pre ? "pre-depends on" : "depends on"
    }

    /// "conflicts with" or "breaks", as the unit's metadata says; Debian's indexes do not tell them
    /// apart once libsolv has read them.
    private func conflictField(of id: SolvableID, _ dependency: DependencyID) -> String {
        guard let metadata = pool.source(id).metadata else { return "conflicts with (or breaks)" }
        let name = solv.targetName(dependency)
        return metadata.breaks.contains { $0.name == name } && !metadata.conflicts.contains { $0.name == name }
            ? "breaks" : "conflicts with"
    }

    /// ` (repository main has libfoo 1.0-1, 1.1-1)` when units of the named layer exist at other versions.
    private func offered(_ dependency: DependencyID) -> String {
        let units = solv.units(named: solv.targetName(dependency))
        guard !units.isEmpty else { return "" }
        return " (available: " + units.map(pool.describe).joined(separator: ", ") + ")"
    }
}
