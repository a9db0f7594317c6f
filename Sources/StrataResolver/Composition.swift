import StrataLayers

/// A layer unit ready to be mounted: where its objects are and its layer manifest.
public struct ComposedUnit: Sendable {
    public var unit: ResolvedUnit
    /// The local repository holding the unit's objects (for Debian units, `$STRATA_HOME/debian`).
    public var repositoryPath: String
    /// The index row; `record.digest` is the layer manifest.
    public var record: LayerRecord
}

extension Resolution {
    /// Every unit with its repository and layer manifest, in configuration-script order (Pre-Depends
    /// strictly first). Debian units are imported on first use, which downloads them.
    public func composedUnits(home: StrataHome) throws -> [ComposedUnit] {
        let debian = DebianArchive(home: home)
        // The Debian units imported together: one download for all that are missing.
        let debianUnits = units.filter { $0.location == .debian }
        var debianRecords = try debian.ensureImported(debianUnits).makeIterator()
        return try units.map { unit in
            switch unit.location {
            case .local(let path):
                guard let record = unit.record else { throw LayerError("\(unit.entry): no index row in \(path)") }
                return ComposedUnit(unit: unit, repositoryPath: path, record: record)
            case .debian:
                guard let record = debianRecords.next() else { throw LayerError("\(unit.entry): not imported") }
                return ComposedUnit(unit: unit, repositoryPath: debian.repositoryPath, record: record)
            }
        }
    }
}
