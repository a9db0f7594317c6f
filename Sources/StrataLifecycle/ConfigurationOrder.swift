import StrataLayers

/// The order in which layers are configured: a layer after everything it depends on (Pre-Depends and
/// Depends, through Provides too) among the layers being configured. Layers that depend on each other
/// in a cycle are configured together, in an order that puts a layer after what it pre-depends on
/// where possible, then by name; layers outside the set are there already.
enum ConfigurationOrder {
    static func sorted(_ layers: [InstalledLayer]) -> [InstalledLayer] {
        var byName: [String: Int] = [:]
        for (index, layer) in layers.enumerated() { byName[layer.name] = index }
        for (index, layer) in layers.enumerated() {
            for provided in layer.metadata.provides where byName[provided.name] == nil { byName[provided.name] = index }
        }
        func targets(_ groups: [[Relation]], of index: Int) -> [Int] {
            Array(Set(groups.flatMap { $0.compactMap { byName[$0.name] } }.filter { $0 != index })).sorted()
        }
        let strict = layers.indices.map { targets(layers[$0].metadata.preDepends, of: $0) }
        let edges = layers.indices.map { Array(Set(strict[$0] + targets(layers[$0].metadata.depends, of: $0))).sorted() }
        // Tarjan's algorithm yields each strongly connected component after every component it reaches:
        // dependencies first.
        var order: [InstalledLayer] = []
        for component in StronglyConnected(edges: edges, order: layers.indices.sorted { layers[$0].name < layers[$1].name }).components {
            var left = component.sorted { layers[$0].name < layers[$1].name }
            var done = Set<Int>()
            while !left.isEmpty {
                let next = left.firstIndex { strict[$0].allSatisfy { done.contains($0) || !component.contains($0) } } ?? 0
                done.insert(left[next])
                order.append(layers[left.remove(at: next)])
            }
        }
        return order
    }
}
