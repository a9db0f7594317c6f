import Foundation
import StrataLayers
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Takes a mounted VLFS from the layers it shows to a new set and configures them as dpkg would:
/// the old layers' `pre-remove` (`remove`, or `upgrade NEW`) while their files are still there, the swap,
/// their `post-remove` (`remove`, or `upgrade NEW`), the new layers' `pre-install` (`install`, or
/// `upgrade OLD`) in dependency order, then `post-install configure [OLD]`: Strata's own layers one by one
/// in dependency order, Debian packages by `dpkg --configure -a` inside the VLFS (which also runs their
/// triggers). A failing script leaves its layer half-installed or half-configured in the state, where
/// status output shows it and the next mount or update tries again; the stack is swapped whole either way.
///
/// Layers whose scripts rewrite what a union of layers is (see `neverRun`) are marked configured
/// without running them.
public final class Configurator {
    public struct Step: Sendable, CustomStringConvertible {
        public let layer: String
        public let action: String
        public let status: Int32
        public var description: String { "\(layer): \(action)\(status == 0 ? "" : " failed (exit status \(status))")" }
    }

    /// Layers whose maintainer scripts must not run in a VLFS, and why.
    public static let neverRun = [
        "usrmerge": "its post-install converts / to merged /usr in place, moving files out of read-only layers",
    ]

    let stateFile: String
    let runner: ScriptRunner
    let mountpoint: String
    public private(set) var state: ConfigurationState
    public private(set) var steps: [Step] = []
    /// The state as last written, and as the shown dpkg database was last generated from: what has not
    /// changed is neither written nor swapped in again (each costs syncs).
    private var saved: ConfigurationState
    private var shownState: ConfigurationState

    /// `directory` is the VLFS's state directory: `configuration`, `configure.log` and the scripts'
    /// staging directory live there.
    public init(stateDirectory directory: String, mountpoint: String) throws {
        stateFile = Self.stateFile(in: directory)
        runner = ScriptRunner(mountpoint: mountpoint, log: Self.log(in: directory), staging: directory + "/scripts")
        self.mountpoint = mountpoint
        state = try ConfigurationState.load(stateFile)
        saved = state
        shownState = state
    }

    public static func stateFile(in directory: String) -> String { directory + "/configuration" }
    public static func log(in directory: String) -> String { directory + "/configure.log" }

    /// Forgets every layer's configuration (their results went with a reset private layer).
    public func forget() throws {
        state.records = [:]
        try save()
    }

    /// Moves the VLFS from `previous` (the software layers it shows now; empty at mount) to `layers`.
    /// `swap` recomposes the stack with the given state (whose generated dpkg database follows it);
    /// `revert` drops private copies of paths so the layers' (generated) originals show again.
    /// `configuredByLayers` are the layer instances whose configuration the VLFS's configuration layers
    /// hold (a template's, promoted): taken as configured where the state knows nothing of a layer, so
    /// that the same instance runs no script and a newer one is upgraded from it.
    /// `stackShown` says the VLFS shows the stack of `layers` already (a mount, a retry); else the first
    /// swap changes layers.
    public func transition(from previous: [InstalledLayer], to layers: [InstalledLayer], stackShown: Bool, configuredByLayers: [String: ConfigurationState.Record] = [:],
                           home: StrataHome, swap: (ConfigurationState) throws -> Void, revert: ([String]) throws -> Void) throws {
        steps = []
        // Swaps in the stack for `layers` with the state as it is now, unless it shows that already.
        var layersShown = stackShown
        func show(_ state: ConfigurationState) throws {
            guard !layersShown || state != shownState else { return }
            try swap(state)
            layersShown = true
            shownState = state
        }
        try foldDpkgWrites(layers: Set(state.records.keys), revert: revert)
        for layer in layers where state.records[layer.name] == nil { state.records[layer.name] = configuredByLayers[layer.name] }
        let incoming = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let shown = Dictionary(previous.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        // Records of instances no longer composed: removed layers, and the old side of upgrades.
        let departing = state.records.values.filter { incoming[$0.name]?.digest != $0.digest }.sorted { $0.name < $1.name }
        let departingLayers = departing.map { record in (record, shown[record.name] ?? (try? record.layer(in: home))) }

        for (record, old) in departingLayers.reversed() {
            let arguments = incoming[record.name].map { ["upgrade", $0.version] } ?? ["remove"]
            try runScript(.preRemove, of: old, arguments: arguments, what: record.name)
        }
        try show(state)
        for (record, old) in departingLayers {
            let arguments = incoming[record.name].map { ["upgrade", $0.version] } ?? ["remove"]
            try runScript(.postRemove, of: old, arguments: arguments, what: record.name)
            if incoming[record.name] == nil { state.records[record.name] = nil }
        }

        // New instances: pre-install, then unpacked. Half-installed ones try again.
        for layer in ConfigurationOrder.sorted(layers) {
            let record = state.records[layer.name]
            guard record?.digest != layer.digest || record?.phase == .halfInstalled else { continue }
            let configured = record?.configuredVersion
            let arguments = configured.map { ["upgrade", $0] } ?? ["install"]
            let status = try runScript(.preInstall, of: layer, arguments: arguments, what: layer.name)
            state.records[layer.name] = ConfigurationState.Record(
                name: layer.name, version: layer.version, repository: layer.repository, digest: layer.digest,
                phase: status == 0 ? .unpacked : .halfInstalled, configuredVersion: configured,
                problem: status == 0 ? nil : "pre-install \(arguments.joined(separator: " ")) failed with exit status \(status)")
        }
        try save()

        // Strata's own layers: post-install in dependency order.
        for layer in ConfigurationOrder.sorted(layers.filter { !$0.isDebianPackage }) {
            guard let record = state.records[layer.name], [.unpacked, .halfConfigured].contains(record.phase) else { continue }
            let arguments = ["configure"] + (record.configuredVersion.map { [$0] } ?? [])
            let status = try runScript(.postInstall, of: layer, arguments: arguments, what: layer.name)
            state.records[layer.name]?.phase = status == 0 ? .installed : .halfConfigured
            state.records[layer.name]?.configuredVersion = status == 0 ? layer.version : record.configuredVersion
            state.records[layer.name]?.problem = status == 0 ? nil : "post-install \(arguments.joined(separator: " ")) failed with exit status \(status)"
        }
        try save()

        try configureDebianPackages(layers.filter(\.isDebianPackage), swap: show, revert: revert)
        try save()
        try show(state)
    }

    private func save() throws {
        guard state != saved else { return }
        try state.save(to: stateFile)
        saved = state
    }

    /// Debian packages: what must not run is marked configured; the rest is dpkg's, with the database
    /// showing each package's state, and what dpkg wrote is folded back into the state.
    private func configureDebianPackages(_ packages: [InstalledLayer], swap: (ConfigurationState) throws -> Void, revert: ([String]) throws -> Void) throws {
        for package in packages where Self.neverRun[package.name] != nil && state.records[package.name]?.phase != .installed {
            state.records[package.name]?.phase = .installed
            state.records[package.name]?.configuredVersion = package.version
            steps.append(Step(layer: package.name, action: "not configured: \(Self.neverRun[package.name]!)", status: 0))
        }
        let pending = packages.filter { [.unpacked, .halfConfigured, .triggersPending, .triggersAwaited].contains(state.records[$0.name]?.phase) }
        guard !pending.isEmpty else { return }
        guard let dpkg = try Self.dpkgProgram(in: packages) else {
            for package in pending { state.records[package.name]?.problem = "dpkg is not in this VLFS: Debian packages cannot be configured" }
            return
        }
        try swap(state)
        let status = try runner.run([dpkg, "--configure", "-a"], environment: [])
        steps.append(Step(layer: "dpkg", action: "--configure -a (\(pending.count) packages)", status: status))
        try foldDpkgWrites(layers: Set(packages.map(\.name)), revert: revert)
        for package in pending where state.records[package.name]?.phase != .installed && status != 0 {
            state.records[package.name]?.problem = "dpkg --configure -a failed with exit status \(status); see the configuration log"
        }
    }

    /// dpkg's path in the VLFS, if a layer provides it.
    static func dpkgProgram(in packages: [InstalledLayer]) throws -> String? {
        guard let layer = packages.first(where: { $0.name == "dpkg" }) else { return nil }
        var lookup = try layer.lookup()
        return try lookup.entry(at: "usr/bin/dpkg") != nil ? "/usr/bin/dpkg" : nil
    }

    /// Runs a layer's script, if it has one (and may run it); its exit status (0 when there is none).
    @discardableResult
    private func runScript(_ script: LayerScript, of layer: InstalledLayer?, arguments: [String], what name: String) throws -> Int32 {
        guard Self.neverRun[name] == nil, let layer, let bytes = try layer.script(script) else { return 0 }
        var environment = ["STRATA_LAYER=\(layer.name)", "STRATA_LAYER_VERSION=\(layer.version)", "STRATA_SCRIPT=\(script.rawValue)"]
        let scriptName: String
        if layer.isDebianPackage {
            // What dpkg tells its maintainer scripts, so that helpers (debconf, dpkg-trigger…) work.
            environment += ["DPKG_MAINTSCRIPT_PACKAGE=\(layer.name)", "DPKG_MAINTSCRIPT_ARCH=\(layer.metadata.architecture)",
                            "DPKG_MAINTSCRIPT_NAME=\(script.debianName)", "DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1",
                            "DPKG_ADMINDIR=/var/lib/dpkg", "DPKG_ROOT="]
            scriptName = DpkgDatabase.infoPrefix(layer) + script.debianName
        } else {
            scriptName = "\(layer.name).\(script.rawValue)"
        }
        let status = try runner.run(script: bytes, named: scriptName, arguments: arguments, environment: environment)
        steps.append(Step(layer: name, action: "\(script.rawValue) \(arguments.joined(separator: " "))", status: status))
        return status
    }

    /// Reads the `status` dpkg wrote into the private layer, if any, into the state: the phases of the
    /// layers named in `layers`, and packages no layer provides as local packages (dropped once
    /// dpkg says they are gone); then drops dpkg's private copies, so the generated database shows.
    private func foldDpkgWrites(layers: Set<String>, revert: ([String]) throws -> Void) throws {
        guard let bytes = try readPrivateStatus() else { return }
        let stanzas: [ControlStanza]
        do {
            stanzas = try ControlFile.parse(String(decoding: bytes, as: UTF8.self), file: "/" + DpkgDatabase.statusPath)
        } catch {
            steps.append(Step(layer: "dpkg", action: "database left unread: \(error)", status: 1))
            try revert(DpkgDatabase.dpkgWrites)
            return
        }
        for stanza in stanzas {
            guard let name = stanza["Package"], let status = stanza["Status"] else { continue }
            let phaseWord = String(status.split(separator: " ").last ?? "")
            if layers.contains(name) {
                guard state.records[name] != nil, let phase = ConfigurationState.Phase(rawValue: phaseWord) else { continue }
                state.records[name]?.phase = phase
                state.records[name]?.configuredVersion = phase == .installed ? stanza["Version"] : stanza["Config-Version"]
                state.records[name]?.triggersPending = stanza["Triggers-Pending"]
                state.records[name]?.triggersAwaited = stanza["Triggers-Awaited"]
                if phase == .installed { state.records[name]?.problem = nil }
            } else if ["not-installed", "config-files"].contains(phaseWord) {
                state.localPackages[name] = nil
            } else {
                state.localPackages[name] = ControlFile.paragraph(stanza.fields.map { ($0.name, $0.value) })
            }
        }
        try save()
        try revert(DpkgDatabase.dpkgWrites)
    }

    /// The VLFS's `status` if the private layer has its own copy; read through the mount beneath its
    /// root, never following a symlink the appliance planted, and at most 64 MiB.
    private func readPrivateStatus() throws -> [UInt8]? {
        let root = try FileDescriptor.open(mountpoint, O_RDONLY | O_DIRECTORY)
        let fd = Beneath.open(root.raw, DpkgDatabase.statusPath, flags: O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let file = FileDescriptor(raw: fd, path: mountpoint + "/" + DpkgDatabase.statusPath)
        guard try ExtendedAttributes.get(.descriptor(fd), "user.strata.layer") == Array("private".utf8) else { return nil }
        return try file.readAll(limit: 64 << 20)
    }
}

extension ConfigurationState.Record {
    /// This record's layer instance from its repository (for the scripts of a layer no longer composed).
    func layer(in home: StrataHome) throws -> InstalledLayer {
        let repository = try home.repository(repository)
        let manifest = try repository.layerManifest(digest, what: "layer \(name) \(version)")
        return InstalledLayer(repository: self.repository, metadata: try LayerMetadata(parsing: manifest.metadata, file: "layer \(name) \(version)"),
                              digest: digest, filesystem: manifest.filesystem, scripts: manifest.scripts, store: repository.store,
                              remote: RemoteObjects.for(repository))
    }
}
