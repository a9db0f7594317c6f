import StrataLayers

/// The minimal explicit set of an installed system (VM2Docker, section 4.3.2): in the graph where A → B
/// when A depends on B, the packages nothing depends on (in-degree 0) and one member of each strongly
/// connected component of size > 1 that nothing outside it depends on — together, one member of each
/// source component of the graph. Installing those brings the rest in as dependencies.
///
/// An edge follows what a resolver would do, so that resolving the set brings back the same packages:
/// of `a | b`, only the first alternative counts (apt and Strata take it when it can be had, so a
/// machine with `b` installed keeps `b` only by naming it), and a virtual name only when exactly one
/// installed package provides it and none has the name.
///
/// Strata then leaves out the source components holding an `Essential: yes` package: resolution always
/// includes the Essential layers of a repository, and with them everything they reach. (Debian's
/// `Priority: required` set is base only for the `debian` location, not for the local repository an
/// imported machine's layers live in.)
public struct ExplicitSet: Sendable {
    /// The thesis's set, by name.
    public let minimal: [String]
    /// The set the LDF names: `minimal` less the components the base brings in.
    public let explicit: [String]

    public init(_ packages: [InstalledPackage]) {
        var byName: [String: Int] = [:]
        for (index, package) in packages.enumerated() { byName[package.name] = index }
        var providers: [String: [Int]] = [:]
        for (index, package) in packages.enumerated() {
            for provided in package.metadata.provides { providers[provided.name, default: []].append(index) }
        }
        func target(_ relation: Relation) -> Int? {
            if let index = byName[relation.name] { return index }
            guard let provided = providers[relation.name], provided.count == 1 else { return nil }
            return provided[0]
        }
        let edges: [[Int]] = packages.indices.map { index in
            let groups = packages[index].metadata.preDepends + packages[index].metadata.depends
            return Array(Set(groups.compactMap { $0.first.flatMap(target) }.filter { $0 != index })).sorted()
        }
        let order = packages.indices.sorted { packages[$0].name < packages[$1].name }
        let components = StronglyConnected(edges: edges, order: order).components
        var component = [Int](repeating: 0, count: packages.count)
        for (number, members) in components.enumerated() { for member in members { component[member] = number } }
        var reached = [Bool](repeating: false, count: components.count)
        for (from, targets) in edges.enumerated() {
            for to in targets where component[to] != component[from] { reached[component[to]] = true }
        }
        var minimal: [String] = []
        var explicit: [String] = []
        for (number, members) in components.enumerated() where !reached[number] {
            let names = members.map { packages[$0].name }.sorted()
            minimal.append(names[0])
            if !members.contains(where: { packages[$0].metadata.essential }) { explicit.append(names[0]) }
        }
        self.minimal = minimal.sorted()
        self.explicit = explicit.sorted()
    }
}
