import Foundation
import StrataLayers
import StrataLifecycle
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Where a VLFS named NAME keeps its state: `$STRATA_HOME/vlfs/NAME/` holds the private layer, one
/// whiteout list per shared layer instance, the path of its LDF, and the daemon's control socket.
public struct VLFSState: Sendable {
    public let name: String
    public let directory: String
    /// The gc root of the dpkg database this VLFS shows (in the home's `held/`, beside the others).
    public let heldDatabase: String

    public init(home: StrataHome, name: String) throws {
        try StrataHome.checkName(name)
        self.name = name
        directory = home.path + "/vlfs/" + name
        heldDatabase = home.path + "/held/vlfs-\(name)-dpkg-database"
    }

    public var privateRoot: String { directory + "/private" }
    public var whiteouts: String { directory + "/whiteouts" }
    public var ldfRecord: String { directory + "/ldf" }
    public var controlSocket: String { directory + "/control.sock" }
    public var log: String { directory + "/daemon.log" }
    /// The shared files the last mount opened first (`FirstOpens`).
    public var firstOpens: String { directory + "/first-opens" }
    /// How far each layer is configured (`ConfigurationState`).
    public var configuration: String { Configurator.stateFile(in: directory) }

    /// The running daemon's process id, present while it serves.
    public var pidFile: String { directory + "/daemon.pid" }

    public func daemonProcess() -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              VLFSState.isRunning(pid) else { return nil }
        return pid
    }

    /// Alive and not a zombie waiting for a parent that does not reap it.
    public static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    /// The LDF this VLFS was mounted from.
    public func ldf() throws -> String {
        guard let text = try? String(contentsOfFile: ldfRecord, encoding: .utf8) else {
            throw LayerError("VLFS '\(name)' has never been mounted (no \(ldfRecord))")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func recordLDF(_ path: String) throws {
        try makeDirectories(directory, mode: 0o700)
        try AtomicFile.write(path + "\n", to: ldfRecord)
    }
}

/// Turns an LDF into the shared layers of a VLFS: every layer it names (explicit, through its
/// includes, and implicit: its own block, or its templates' when it has none) found in its repository —
/// the pinned version, or the newest one. A layer of a served repository is fetched into its mirror
/// the first time (`progress` hears how far): whole, or only its scripts, its directories then coming
/// as they are listed and its files as they are opened.
public enum Composition {
    public static let layerTypeField = "Layer-Type"

    /// Where a layer stacks, from its `Layer-Type` field: `config` and `generated` as named, anything
    /// else a software layer.
    public static func kind(of metadata: LayerMetadata) -> SharedLayer.Kind {
        let type = metadata.extraFields.first { $0.name.caseInsensitiveCompare(layerTypeField) == .orderedSame }?.value
        return type.flatMap(SharedLayer.Kind.init(rawValue:)) ?? .software
    }

    /// One layer an LDF composes: its unit in the repository the LDF names.
    public struct PlannedLayer: Sendable {
        public let repositoryName: String
        public let repository: Repository
        public let record: LayerRecord

        /// `REPO/NAME VERSION`, as LDF lines and `vlfs/NAME/composed` name it.
        public var label: String { "\(repositoryName)/\(record.name) \(record.version)" }
    }

    /// The layers in stacking order for configuration layers (the LDF's own above those of the
    /// templates it includes, templates in include order, recursively; see `ExpandedLDF.stackingOrder`).
    public static func layers(ldf: String, home: StrataHome, depth: Repository.FetchDepth = .whole, progress: FetchObserver? = nil) throws -> [SharedLayer] {
        let found = try plan(ldf: ldf, home: home)
        // All of a mirror's missing layers in one fetch: objects flow at full width, and commits are few.
        for name in Set(found.map(\.repositoryName)) {
            let units = found.filter { $0.repositoryName == name }
            try units[0].repository.fetchLayers(units.map(\.record), depth: depth, progress: progress)
        }
        return try found.map { planned in
            let manifest = try planned.repository.layerManifest(planned.record)
            let metadata = try planned.record.parsedMetadata()
            let remote = RemoteObjects.for(planned.repository)
            // A layer not yet whole reads its missing trees from the server as they are listed.
            let store = remote.map { planned.repository.store.fetchingMissingManifests(from: $0) } ?? planned.repository.store
            return SharedLayer(repository: planned.repositoryName, metadata: metadata, digest: planned.record.digest, root: manifest.filesystem,
                               store: store, kind: kind(of: metadata), scripts: manifest.scripts, remote: remote, paths: planned.record.paths)
        }
    }

    /// What an LDF composes, in the order `layers` takes them, found in the repositories' indexes
    /// without fetching anything.
    public static func plan(ldf: String, home: StrataHome) throws -> [PlannedLayer] {
        let expanded = try home.loadExpanded(ldf)
        let rank = Dictionary(expanded.stackingOrder.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let entries = (expanded.entries + expanded.implicitEntries).enumerated()
            .sorted { (rank[$0.element.source.file] ?? 0, $0.offset) < (rank[$1.element.source.file] ?? 0, $1.offset) }
            .map { ($0.element.entry, $0.element.source.description) }
        var repositories: [String: Repository] = [:]
        var found: [PlannedLayer] = []
        var seen = Set<String>()
        for (entry, source) in entries where seen.insert(entry.layer).inserted {
            let repository: Repository
            if let open = repositories[entry.repository] {
                repository = open
            } else {
                do {
                    repository = try home.repository(entry.repository)
                } catch {
                    throw LayerError("\(source): repository '\(entry.repository)': \(error)")
                }
                repositories[entry.repository] = repository
            }
            guard let record = try repository.find(entry.layer, version: entry.version?.description) else {
                throw LayerError("\(source): layer \(entry.repository)/\(entry.layer)\(entry.version.map { " \($0)" } ?? "") is not in \(repository.path)")
            }
            found.append(PlannedLayer(repositoryName: entry.repository, repository: repository, record: record))
        }
        return found
    }

    /// The union of a VLFS as its state stands (when no daemon serves it, or to read it alongside one).
    public static func union(of state: VLFSState, home: StrataHome) throws -> Union {
        try Union(stack: try stack(ldf: try state.ldf(), home: home, state: state), privateRoot: state.privateRoot, whiteoutDirectory: state.whiteouts)
    }

    /// The stack for a VLFS's LDF, with its whiteout layers and generated dpkg database from the
    /// VLFS's state.
    public static func stack(ldf: String, home: StrataHome, state: VLFSState, depth: Repository.FetchDepth = .whole, progress: FetchObserver? = nil) throws -> LayerStack {
        try stack(layers: try layers(ldf: ldf, home: home, depth: depth, progress: progress), home: home, state: state,
                  configuration: try ConfigurationState.load(state.configuration))
    }

    /// The stack of composed layers, with the dpkg database generated for them and `configuration`, and
    /// the whiteout layers of `whiteoutDirectory` (default: the VLFS's).
    public static func stack(layers: [SharedLayer], home: StrataHome, state: VLFSState, configuration: ConfigurationState,
                             whiteoutDirectory: String? = nil) throws -> LayerStack {
        var all = layers
        if let database = try generatedDatabase(layers: layers, home: home, state: state, configuration: configuration) { all.append(database) }
        return try LayerStack(layers: all, whiteoutDirectory: whiteoutDirectory ?? state.whiteouts)
    }

    /// The dpkg database as a layer unit of the home store (so that snapshots and gc treat it as any
    /// layer), held against `gc` by the VLFS's state while it is the current one; nil when no software
    /// layer is a Debian package.
    static func generatedDatabase(layers: [SharedLayer], home: StrataHome, state: VLFSState, configuration: ConfigurationState) throws -> SharedLayer? {
        let software = layers.filter { $0.kind == .software }.map(\.installed)
        guard software.contains(where: \.isDebianPackage) else { return nil }
        let store = try ObjectStore(root: home.path + "/store", create: true)
        let batch = try store.beginBatch()
        guard let root = try DpkgDatabase.build(layers: software, state: configuration, into: batch, cache: home.path + "/cache/dpkg-info") else { return nil }
        let metadata = try LayerMetadata(name: "strata-dpkg-database", version: DebianVersion("1"), extraFields: [MetadataField(layerTypeField, "generated")])
        let digest = try batch.put(LayerManifest(metadata: metadata.controlText, filesystem: root, scripts: nil).encoded())
        try batch.commit()
        let held = "\(digest)  # the dpkg database VLFS \(state.name) shows\n"
        if (try? String(contentsOfFile: state.heldDatabase, encoding: .utf8)) != held {
            try makeDirectories(home.path + "/held")
            try AtomicFile.write(held, to: state.heldDatabase)
        }
        return SharedLayer(repository: "strata", metadata: metadata, digest: digest, root: root, store: store, kind: .generated)
    }
}
