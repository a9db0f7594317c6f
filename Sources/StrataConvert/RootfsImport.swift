import Foundation
import Forensics
import Mirage
import StrataLayers
import StrataLifecycle
import StrataResolver
import StrataStore
import VLFS

/// `strata import rootfs`: an existing Debian machine decomposed into layers, as VM2Docker decomposes a
/// VM (chapter 4.3) — each installed package as its layer at the installed version, in the repository
/// REPO (fetched from the Debian archive, or rebuilt from the machine's files and dpkg's control data
/// when the archive no longer has that version), one configuration layer holding everything else that
/// makes the machine what it is, and an LDF naming the minimal explicit set (`ExplicitSet`), the
/// configuration layer pinned, and the other packages as its implicit block.
///
/// The configuration layer names every package layer as configured (`Configured-Layers`): their
/// maintainer scripts ran on the machine, and what they made is in the machine's files.
public struct RootfsImport {
    public struct Result {
        public var system: String
        public var packages: [String]
        public var fromArchive: [String]
        /// Versions the archive no longer has, rebuilt from the machine's files.
        public var fromMachine: [String]
        public var minimal: [String]
        public var explicit: [String]
        /// apt's manual set (`apt-mark showmanual`): installed and not marked `Auto-Installed`.
        public var manual: [String]
        public var configLayer: LayerRecord
        public var configuration: MachineDiff.Counts
        /// Where resolving the LDF does not give the installed set back.
        public var notes: [String]
        public var verification: MachineDiff?
    }

    public let home: StrataHome
    public let repositoryName: String
    public let exclusions: Exclusions
    public let progress: @Sendable (String) -> Void

    public init(home: StrataHome, repositoryName: String, exclusions: Exclusions, progress: @escaping @Sendable (String) -> Void) {
        self.home = home
        self.repositoryName = repositoryName
        self.exclusions = exclusions
        self.progress = progress
    }

    public func run(source: String, ldf: String, configName: String, verify: Bool) throws -> Result {
        let repository = try ImportTarget.repository(repositoryName, in: home)
        try StrataHome.checkName(configName)

        try makeDirectories(home.path + "/cache")
        let scratch = try temporaryDirectory(in: home.path + "/cache", prefix: "rootfs-")
        defer { try? removeTree(scratch) }
        progress("reading \(source)")
        var machine = try MachineTree(reading: source, scratch: scratch + "/store")

        let system = try Self.debianRelease(&machine)
        guard let status = try machine.file(InstalledPackages.statusPath, limit: InstalledPackages.statusLimit) else {
            throw LayerError("\(source): no /\(InstalledPackages.statusPath): not a Debian system, or its dpkg database is gone")
        }
        let packages = try InstalledPackages.parse(String(decoding: status, as: UTF8.self), file: "\(source)/\(InstalledPackages.statusPath)")
        let manual = try Self.manualPackages(packages, machine: &machine)

        var fromArchive: [String] = []
        var fromMachine: [String] = []
        var records: [String: LayerRecord] = [:]
        let archive = DebianArchive(home: home)
        let wanted = packages.filter { (try? repository.find($0.name, version: $0.version)) == nil }
        let units = wanted.isEmpty ? [:] : try archive.units(exactly: wanted.map { ($0.name, $0.version) })
        for (index, package) in packages.enumerated() {
            if let record = try repository.find(package.name, version: package.version) {
                records[package.name] = record
                fromArchive.append(package.name)
                continue
            }
            progress("[\(index + 1)/\(packages.count)] \(package.name) \(package.version)")
            if let unit = units[package.name] {
                let fetched = try archive.ensureImported(unit)
                let debian = try archive.repository()
                _ = try ObjectTransfer.copy([fetched.digest], from: debian.store, to: repository.store)
                records[package.name] = try repository.registerStoredLayer(fetched.digest)
                fromArchive.append(package.name)
            } else {
                records[package.name] = try PackageRebuild.layer(of: package, machine: &machine, source: source, into: repository)
                fromMachine.append(package.name)
            }
        }

        let set = ExplicitSet(packages)
        let softwareLDF = scratch + "/packages.ldf"
        try AtomicFile.write(packages.map { "\(repositoryName)/\($0.name) \($0.version)\n" }.joined(), to: softwareLDF)
        progress("comparing the packages with the machine")
        let composed = try compose(ldf: softwareLDF, scratch: scratch, repository: repository)
        let diff = try MachineDiff(composed: composed, composedStore: repository.store, machine: machine, exclusions: exclusions)

        let batch = try repository.store.beginBatch()
        let filesystem = try diff.configurationTree(machine: &machine, into: batch)
        let configured = packages.map { "\(repositoryName)/\($0.name) \($0.version) \(records[$0.name]!.digest)" }.joined(separator: "\n")
        let metadata = try LayerMetadata(name: configName, version: try repository.nextWholeVersion(of: configName),
                                         description: "configuration of the machine imported from \(source) (\(system))",
                                         extraFields: [MetadataField(Composition.layerTypeField, "config"),
                                                       MetadataField(ConfigurationState.configuredLayersField, "\n" + configured)])
        let digest = try batch.put(LayerManifest(metadata: metadata.controlText, filesystem: filesystem, scripts: nil).encoded())
        try batch.commit()
        let configLayer = try repository.registerStoredLayer(digest)

        var explicit = set.explicit
        var notes: [String] = []
        for _ in 0..<3 {
            try writeLDF(ldf, explicit: explicit, packages: packages, configLayer: configLayer, system: system, source: source)
            let resolved = try LDFEditor(home: home).apply(.none, to: ldf).resolution
            let installed = Dictionary(uniqueKeysWithValues: packages.map { ($0.name, $0.version) })
            let dropped = packages.map(\.name).filter { resolved.unit(named: $0) == nil }
            notes = resolved.units.compactMap { unit in
                guard unit.name != configName else { return nil }
                guard let version = installed[unit.name] else { return "the resolver adds \(unit.name) \(unit.version), which the machine does not have" }
                return version == unit.version.description ? nil : "the resolver takes \(unit.name) \(unit.version), the machine has \(version)"
            }
            if dropped.isEmpty { break }
            notes += dropped.map { "\($0) is named explicitly: nothing the explicit set brings in needs it" }
            explicit = Array(Set(explicit + dropped)).sorted()
        }

        var verification: MachineDiff?
        if verify {
            progress("verifying the composed VLFS against \(source)")
            let composedAll = try compose(ldf: ldf, scratch: scratch, repository: repository)
            verification = try MachineDiff(composed: composedAll, composedStore: repository.store, machine: machine, exclusions: exclusions)
        }
        return Result(system: system, packages: packages.map(\.name), fromArchive: fromArchive, fromMachine: fromMachine, minimal: set.minimal,
                      explicit: explicit, manual: manual, configLayer: configLayer, configuration: diff.counts, notes: notes,
                      verification: verification)
    }

    /// The tree an LDF's layers compose (software and configuration layers; no private layer, and no
    /// generated dpkg database: the machine's own is excluded), its directories stored in `repository`.
    private func compose(ldf: String, scratch: String, repository: Repository) throws -> TreeEntry {
        let union = try BareUnion.of(try Composition.layers(ldf: ldf, home: home), scratch: scratch)
        let batch = try repository.store.beginBatch()
        let tree = try Snapshot.filesystem(of: union, into: batch)
        try batch.commit()
        return tree
    }

    private func writeLDF(_ path: String, explicit: [String], packages: [InstalledPackage], configLayer: LayerRecord, system: String, source: String) throws {
        let named = Set(explicit)
        var text = "# \(system), imported from \(source) by strata import rootfs\n"
        text += packages.filter { named.contains($0.name) }.map { "\(repositoryName)/\($0.name) \($0.version)\n" }.joined()
        text += "=\(repositoryName)/\(configLayer.name) \(configLayer.version)\n\n"
        text += packages.filter { !named.contains($0.name) }.map { "\(repositoryName)/\($0.name) \($0.version)\n" }.joined()
        try AtomicFile.write(text, to: path)
    }

    /// `PRETTY_NAME` of a Debian system's `os-release`; anything but Debian is refused.
    static func debianRelease(_ machine: inout MachineTree) throws -> String {
        guard let bytes = try machine.file("etc/os-release", limit: 64 << 10) ?? machine.file("usr/lib/os-release", limit: 64 << 10) else {
            throw LayerError("\(machine.source): no /etc/os-release: cannot tell which system this is")
        }
        var fields: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = line[line.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
        }
        guard fields["ID"] == "debian" else {
            throw LayerError("\(machine.source): /etc/os-release says ID=\(fields["ID"] ?? "(none)"); only Debian systems are imported")
        }
        return fields["PRETTY_NAME"] ?? "Debian \(fields["VERSION_ID"] ?? "")"
    }

    /// Installed packages apt has not marked `Auto-Installed: 1` in `var/lib/apt/extended_states`.
    static func manualPackages(_ packages: [InstalledPackage], machine: inout MachineTree) throws -> [String] {
        let path = "var/lib/apt/extended_states"
        var automatic: Set<String> = []
        if let bytes = try machine.file(path, limit: 64 << 20) {
            for stanza in try ControlFile.parse(String(decoding: bytes, as: UTF8.self), file: "\(machine.source)/\(path)")
            where stanza["Auto-Installed"] == "1" {
                if let name = stanza["Package"] { automatic.insert(name) }
            }
        }
        return packages.map(\.name).filter { !automatic.contains($0) }.sorted()
    }
}
