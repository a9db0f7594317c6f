import StrataStore

/// What a live update changes: exactly the manifest differences between the old and the new layers.
/// A layer kept as it was costs nothing; a new version of a layer costs its tree diff, in time
/// proportional to the difference; a layer added or removed costs its paths.
enum StackDiff {
    static func changedPaths(from old: LayerStack, to new: LayerStack) throws -> [String] {
        var changed = Set<String>()
        let oldByName = Dictionary(old.layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newByName = Dictionary(new.layers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        for (name, newIndex) in newByName {
            let newLayer = new.layers[newIndex]
            if let oldIndex = oldByName[name] {
                let oldLayer = old.layers[oldIndex]
                if oldLayer.digest == newLayer.digest { continue }
                try TreeDiff.compare(oldLayer.root.digest, newLayer.root.digest, oldStore: oldLayer.store, newStore: newLayer.store) { path, _ in
                    changed.insert(path)
                }
                // Whiteouts of the replaced instance no longer apply.
                changed.formUnion(old.whiteouts[oldIndex].all)
            } else {
                try newLayer.store.walk(newLayer.root.digest!) { path, _ in changed.insert(path) }
            }
        }
        for (name, oldIndex) in oldByName where newByName[name] == nil {
            let oldLayer = old.layers[oldIndex]
            try oldLayer.store.walk(oldLayer.root.digest!) { path, _ in changed.insert(path) }
        }
        return changed.sorted()
    }
}
