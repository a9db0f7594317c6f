/// The choices apt would make, worked out before libsolv solves.
///
/// libsolv and apt differ where a dependency leaves a choice. For `a | b`, libsolv merges the
/// providers of both and takes the alphabetically first name; apt takes the first alternative that
/// can be satisfied. For a name that is both a real layer and provided by others, libsolv again
/// goes by the alphabet; apt takes the real layer. This walk follows apt's `MarkInstall`: depth
/// first from the requested units, a dependency already satisfied by a chosen unit needs nothing
/// more, otherwise the first alternative with an installable unit gives its best candidate (a real
/// unit of that name before any provider). The resolver asks libsolv for these units outright and,
/// when they cannot all be had together, favors them.
struct AptPreference {
    let pool: LayerPool

    /// Favor groups, most important first: the units apt would use, in the order it would reach
    /// them. A kept unit appears when it satisfies a dependency before any other alternative does.
    ///
    /// - Parameters:
    ///   - roots: the units requested, in request order.
    ///   - kept: units already chosen (the current LDF), which satisfy what they provide.
    func favorGroups(roots: [SolvableID], kept: [SolvableID]) -> [[SolvableID]] {
        let solv = pool.solv
        var chosen: [Int32: SolvableID] = [:]
        for unit in kept { chosen[solv.nameID(unit)] = unit }
        var groups: [[SolvableID]] = []
        var visited: Set<SolvableID> = []
        var grouped: Set<SolvableID> = []

        func isChosen(_ unit: SolvableID) -> Bool { chosen[solv.nameID(unit)] == unit }

        func choose(_ unit: SolvableID) {
            chosen[solv.nameID(unit)] = unit
            if grouped.insert(unit).inserted { groups.append([unit]) }
        }

        func expand(_ unit: SolvableID) {
            guard visited.insert(unit).inserted else { return }
            for (dependency, _) in solv.requirements(unit) {
                let alternatives = solv.alternatives(dependency)
                if let satisfied = alternatives.lazy.compactMap({ solv.providers($0).first(where: isChosen) }).first {
                    choose(satisfied)
                    expand(satisfied)
                    continue
                }
                for alternative in alternatives {
                    switch candidate(for: alternative) {
                    case .unsatisfiable:
                        continue
                    case .unit(let pick):
                        choose(pick)
                        expand(pick)
                    case .providers(let providers):
                        groups.append(providers)
                    }
                    break
                }
            }
        }

        // As `apt-get install` does, every requested unit is marked before any dependency is followed.
        for root in roots { choose(root) }
        for root in roots { expand(root) }
        return groups
    }

    /// The units of `units` that apt would see as needed: those named by `requested`, and
    /// recursively, for each dependency, the units satisfying its first alternative that any unit
    /// satisfies.
    func reached(from requested: Set<Int32>, in units: [SolvableID]) -> Set<SolvableID> {
        let solv = pool.solv
        let members = Set(units)
        var reached: Set<SolvableID> = []
        var stack = units.filter { requested.contains(solv.nameID($0)) }
        while let unit = stack.popLast() {
            guard reached.insert(unit).inserted else { continue }
            for (dependency, _) in solv.requirements(unit) {
                let satisfying = solv.alternatives(dependency).lazy
                    .map { solv.providers($0).filter(members.contains) }.first { !$0.isEmpty }
                stack += satisfying ?? []
            }
        }
        return reached
    }

    private enum Candidate {
        case unsatisfiable
        case unit(SolvableID)
        /// A virtual name with providers of several names: apt would pick one of them by its own
        /// ordering; they are favored together and libsolv picks.
        case providers([SolvableID])
    }

    private func candidate(for alternative: DependencyID) -> Candidate {
        let solv = pool.solv
        let providers = solv.providers(alternative).filter(solv.isInstallable)
        if providers.isEmpty { return .unsatisfiable }
        let target = solv.targetNameID(alternative)
        let real = providers.filter { solv.nameID($0) == target }
        if let best = pool.best(real) { return .unit(best) }
        let byName = Dictionary(grouping: providers, by: solv.nameID).values.compactMap(pool.best)
        return byName.count == 1 ? .unit(byName[0]) : .providers(byName.sorted())
    }
}
