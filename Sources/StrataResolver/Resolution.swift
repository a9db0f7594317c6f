import StrataLayers

/// One layer unit of a resolved LDF.
public struct ResolvedUnit: Hashable, Sendable {
    /// `repository/layer version`, held if the LDF holds it.
    public var entry: LDFEntry
    public var architecture: String
    public var location: RepositoryLocation
    /// The index row (with the layer-manifest digest) for units of local repositories. Debian units
    /// get theirs from `DebianArchive.ensureImported`.
    public var record: LayerRecord?
    /// For Debian units: the SHA-256 of the `.deb` as the apt index states it.
    public var debSHA256: String?
    /// Named by the LDF or one of its templates, rather than added by the resolver.
    public var isExplicit: Bool
    /// The layers this unit pre-depends on, whose configuration must be complete before its own.
    public var preDepends: [String]

    public var name: String { entry.layer }
    public var version: DebianVersion { entry.version! }
}

/// The outcome of resolving an LDF.
public struct Resolution: Sendable {
    /// Every unit, in the order their configuration scripts run (Pre-Depends strictly first).
    public var units: [ResolvedUnit]

    /// The layers the resolver added beyond the explicit layers of the file and its templates: the
    /// LDF's implicit block.
    public var implicitEntries: [LDFEntry] { units.filter { !$0.isExplicit }.map(\.entry) }

    public func unit(named layer: String) -> ResolvedUnit? { units.first { $0.name == layer } }
}

/// Which layers `upgrade` moves to the newest versions the repositories offer.
public enum UpgradeScope: Sendable, Equatable {
    case none
    case all
    case layers(Set<String>)

    func includes(_ layer: String) -> Bool {
        switch self {
        case .none: false
        case .all: true
        case .layers(let names): names.contains(layer)
        }
    }
}

/// An LDF that cannot be resolved, with libsolv's problems and solutions in plain words.
public struct ResolutionError: Error, CustomStringConvertible, Sendable {
    public let description: String
}
