import Foundation
import StrataLayers
import StrataStore

/// The dpkg database a VLFS shows under `/var/lib/dpkg`, generated from its layers and its
/// configuration state: `status` with every layer's control fields and state, `info/` with each
/// package's file list and control members (maintainer scripts, `conffiles`, `md5sums`, `triggers`,
/// debconf's `templates` and `config`…), and the trigger interest files. It is a read-only tree in the
/// store, rebuilt whenever the stack or the state changes, so it can never disagree with the layers.
///
/// A `usr/sbin/policy-rc.d` comes with it (unless a layer has one) that forbids starting services
/// while Strata configures (`STRATA_CONFIGURING` set) and allows it otherwise: scripts run outside
/// the appliance's own init, where a started service would only hold the mount busy.
public enum DpkgDatabase {
    public static let directory = "var/lib/dpkg"
    public static let statusPath = directory + "/status"
    /// What dpkg writes beside `status` as it works, folded back into the state and then dropped.
    public static let dpkgWrites = [statusPath, directory + "/status-old", directory + "/updates"]
    public static let policyPath = "usr/sbin/policy-rc.d"
    public static let configuringVariable = "STRATA_CONFIGURING"

    /// The tree's root, stored in `batch`'s store, or nil when no layer is a Debian package. What each
    /// layer contributes is kept in `cache` (a directory) by layer digest, so that a rebuild after a
    /// state change or an upgrade walks only the layers it has not seen.
    public static func build(layers: [InstalledLayer], state: ConfigurationState, into batch: ObjectStore.Batch, cache: String) throws -> TreeEntry? {
        guard layers.contains(where: \.isDebianPackage) else { return nil }
        let tree = TreeBuilder(source: "the generated dpkg database")
        var status = ""
        var fileTriggers: [String] = []
        var namedTriggers: [String: [String]] = [:]
        var hasPolicy = false
        for layer in layers.sorted(by: { $0.name < $1.name }) {
            let info = try LayerInfo.cached(layer, in: cache, batch: batch)
            for entry in info.files { try tree.add(entry, at: components(directory + "/info/" + entry.name)) }
            for interest in info.interests {
                if interest.trigger.hasPrefix("/") { fileTriggers.append("\(interest.trigger) \(interest.entry)") }
                else { namedTriggers[interest.trigger, default: []].append(interest.entry) }
            }
            hasPolicy = hasPolicy || info.hasPolicy
            status += paragraph(layer, record: state.records[layer.name], conffiles: info.conffiles) + "\n"
        }
        for paragraph in state.localPackages.sorted(by: { $0.key < $1.key }).map(\.value) { status += paragraph + "\n" }
        try tree.addFile(at: components(statusPath), contents: Array(status.utf8), mode: 0o644, into: batch)
        try tree.addFile(at: components(directory + "/available"), contents: [], mode: 0o644, into: batch)
        try tree.addFile(at: components(directory + "/triggers/File"), contents: Array(fileTriggers.map { $0 + "\n" }.joined().utf8), mode: 0o644, into: batch)
        for (trigger, entries) in namedTriggers {
            try tree.addFile(at: components(directory + "/triggers/" + trigger), contents: Array(entries.map { $0 + "\n" }.joined().utf8), mode: 0o644, into: batch)
        }
        if !hasPolicy {
            let script = "#!/bin/sh\n# Strata: no service starts while layers are configured, outside the appliance's init.\n"
                + "[ -n \"$\(configuringVariable)\" ] && exit 101\nexit 0\n"
            try tree.addFile(at: components(policyPath), contents: Array(script.utf8), mode: 0o755, into: batch)
        }
        return try tree.store(into: batch)
    }

    /// What one layer contributes to the database: its `info/` files (stored), its conffiles with their
    /// MD5 sums, its trigger interests, and whether it ships its own `policy-rc.d`.
    struct LayerInfo {
        var files: [TreeEntry] = []
        var conffiles: [String] = []
        var interests: [(trigger: String, entry: String)] = []
        var hasPolicy = false

        static func cached(_ layer: InstalledLayer, in cache: String, batch: ObjectStore.Batch) throws -> LayerInfo {
            let file = cache + "/" + layer.digest.hex
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let info = LayerInfo(text, store: batch.store) { return info }
            let info = try LayerInfo(layer, into: batch)
            try makeDirectories(cache)
            try AtomicFile.write(info.text, to: file)
            return info
        }

        init(_ layer: InstalledLayer, into batch: ObjectStore.Batch) throws {
            let prefix = DpkgDatabase.infoPrefix(layer)
            var lookup = try layer.lookup()
            let members = layer.isDebianPackage ? try layer.scriptMembers() : [:]
            // A `.deb` brings its list (dpkg's paths, before merged /usr); any other layer lists its tree.
            if members[Repository.debianFileList] == nil {
                var paths = ["/."]
                try layer.store.walk(layer.filesystem.digest!) { path, _ in paths.append("/" + path) }
                files.append(try Self.stored(prefix + "list", Array((paths.joined(separator: "\n") + "\n").utf8), mode: 0o644, batch))
            }
            for (name, entry) in members.sorted(by: { $0.key < $1.key }) {
                let bytes = try layer.content(of: entry)
                files.append(try Self.stored(prefix + (LayerScript(rawValue: name)?.debianName ?? name), bytes, mode: entry.mode, batch))
                if name == "conffiles" { conffiles = try DpkgDatabase.conffileLines(bytes, layer: layer, lookup: &lookup) }
                if name == "triggers" { interests = DpkgDatabase.interests(bytes, package: layer.name) }
            }
            hasPolicy = try lookup.entry(at: DpkgDatabase.policyPath) != nil
        }

        private static func stored(_ name: String, _ bytes: [UInt8], mode: UInt32, _ batch: ObjectStore.Batch) throws -> TreeEntry {
            TreeEntry(name: name, kind: .regular, mode: mode, size: UInt64(bytes.count), digest: try batch.put(bytes))
        }

        /// One line a fact: `file MODE SIZE DIGEST NAME`, `conffile LINE`, `interest TRIGGER ENTRY`, `policy`.
        var text: String {
            files.map { "file \(String($0.mode, radix: 8)) \($0.size) \($0.digest!) \($0.name)\n" }.joined()
                + conffiles.map { "conffile \($0)\n" }.joined()
                + interests.map { "interest \($0.trigger) \($0.entry)\n" }.joined()
                + (hasPolicy ? "policy\n" : "")
        }

        /// A cache file read back; nil if it is damaged or names an object the store no longer has
        /// (collected since), and the layer is read again.
        init?(_ text: String, store: ObjectStore) {
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ", maxSplits: 4)
                switch words.first {
                case "file":
                    guard words.count == 5, let mode = UInt32(words[1], radix: 8), let size = UInt64(words[2]), let digest = Digest(words[3]),
                          store.has(digest) else { return nil }
                    files.append(TreeEntry(name: String(words[4]), kind: .regular, mode: mode, size: size, digest: digest))
                case "conffile": conffiles.append(String(line.dropFirst("conffile ".count)))
                case "interest":
                    guard words.count == 3 else { return nil }
                    interests.append((String(words[1]), String(words[2])))
                case "policy": hasPolicy = true
                default: return nil
                }
            }
            guard !files.isEmpty else { return nil }
        }
    }

    /// dpkg names a `Multi-Arch: same` package's files `NAME:ARCH.*`, any other's `NAME.*`.
    public static func infoPrefix(_ layer: InstalledLayer) -> String {
        layer.metadata.multiArch == "same" ? "\(layer.name):\(layer.metadata.architecture)." : "\(layer.name)."
    }

    /// The layer's status paragraph: its control fields as the package had them, with dpkg's state.
    static func paragraph(_ layer: InstalledLayer, record: ConfigurationState.Record?, conffiles: [String]) -> String {
        // A record of another instance (an upgrade not configured yet) still says what was configured.
        let current = record?.digest == layer.digest ? record : nil
        let phase = current?.phase ?? .unpacked
        var fields: [(name: String, value: String)] = [("Package", layer.name), ("Status", "install ok \(phase.rawValue)")]
        let control = (try? ControlFile.parse(layer.metadata.controlText, file: layer.name).first?.fields) ?? []
        fields += control.filter { $0.name != "Layer" }.map { ($0.name, $0.value) }
        if !conffiles.isEmpty { fields.append(("Conffiles", "\n" + conffiles.joined(separator: "\n"))) }
        if let configured = record?.configuredVersion, phase != .installed || configured != layer.version { fields.append(("Config-Version", configured)) }
        if let value = current?.triggersPending { fields.append(("Triggers-Pending", value)) }
        if let value = current?.triggersAwaited { fields.append(("Triggers-Awaited", value)) }
        return ControlFile.paragraph(fields)
    }

    /// ` PATH MD5` for each conffile the layer ships (dpkg's `Conffiles` field); a conffile line may carry
    /// a flag first (`remove-on-upgrade PATH`), and those name files the package no longer ships.
    static func conffileLines(_ bytes: [UInt8], layer: InstalledLayer, lookup: inout LayerLookup) throws -> [String] {
        var lines: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 1, let path = words.first, path.hasPrefix("/") else { continue }
            let stored = MergedUsr.mapped(components(String(path))).joined(separator: "/")
            guard let entry = try lookup.entry(at: stored), entry.kind == .regular else { continue }
            lines.append("\(path) \(MD5.hex(try layer.content(of: entry)))")
        }
        return lines
    }

    /// The trigger interests a package's `triggers` file declares: (trigger, `PKG` or `PKG/noawait`).
    static func interests(_ bytes: [UInt8], package: String) -> [(trigger: String, entry: String)] {
        String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 2, words[0].hasPrefix("interest") else { return nil }
            return (String(words[1]), words[0] == "interest-noawait" ? "\(package)/noawait" : package)
        }
    }

    private static func components(_ path: String) -> [String] { path.split(separator: "/").map(String.init) }
}
