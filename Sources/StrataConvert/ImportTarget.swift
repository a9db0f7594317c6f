import StrataLayers

/// Where an import puts its layers: a local repository named in the home, since the LDF it writes
/// names its layers' repository by name.
enum ImportTarget {
    static func repository(_ name: String, in home: StrataHome) throws -> Repository {
        guard try home.repositories().contains(where: { $0.name == name && $0.location != "debian" }) else {
            throw LayerError("--repo \(name): not a local repository named in \(home.repositoriesFile) (the LDF names its layers' repository by name)")
        }
        let repository = try home.repository(name)
        if let origin = repository.origin { throw LayerError("repository '\(name)' is a mirror of \(origin): import into a local repository") }
        return repository
    }
}
