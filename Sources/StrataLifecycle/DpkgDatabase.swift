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

    /// The tree's root, stored in `batch`'s store, or nil when no layer is a Debian package.
    public static func build(layers: [InstalledLayer], state: ConfigurationState, into batch: ObjectStore.Batch) throws -> TreeEntry? {
        guard layers.contains(where: \.isDebianPackage) else { return nil }
        let tree = TreeBuilder(source: "the generated dpkg database")
        var status = ""
        var fileTriggers: [String] = []
        var namedTriggers: [String: [String]] = [:]
        for layer in layers.sorted(by: { $0.name < $1.name }) {
            let members = layer.isDebianPackage ? try layer.scriptMembers() : [:]
            let prefix = infoPrefix(layer)
            var paths = ["/."]
            try layer.store.walk(layer.filesystem.digest!) { path, _ in paths.append("/" + path) }
            try tree.addFile(at: [directory, "info", prefix + "list"].flatMap(components), contents: Array((paths.joined(separator: "\n") + "\n").utf8),
                             mode: 0o644, into: batch)
            var conffiles: [String] = []
            for (name, entry) in members.sorted(by: { $0.key < $1.key }) {
                let bytes = try layer.store.read(entry.digest!)
                let infoName = LayerScript(rawValue: name)?.debianName ?? name
                try tree.addFile(at: [directory, "info", prefix + infoName].flatMap(components), contents: bytes, mode: entry.mode, into: batch)
                switch name {
                case "conffiles": conffiles = try conffileLines(bytes, layer: layer)
                case "triggers":
                    for interest in interests(bytes, package: layer.name) {
                        if interest.trigger.hasPrefix("/") { fileTriggers.append("\(interest.trigger) \(interest.entry)") }
                        else { namedTriggers[interest.trigger, default: []].append(interest.entry) }
                    }
                default: break
                }
            }
            status += paragraph(layer, record: state.records[layer.name], conffiles: conffiles) + "\n"
        }
        for paragraph in state.localPackages.sorted(by: { $0.key < $1.key }).map(\.value) { status += paragraph + "\n" }
        try tree.addFile(at: components(statusPath), contents: Array(status.utf8), mode: 0o644, into: batch)
        try tree.addFile(at: components(directory + "/available"), contents: [], mode: 0o644, into: batch)
        try tree.addFile(at: components(directory + "/triggers/File"), contents: Array(fileTriggers.map { $0 + "\n" }.joined().utf8), mode: 0o644, into: batch)
        for (trigger, entries) in namedTriggers {
            try tree.addFile(at: components(directory + "/triggers/" + trigger), contents: Array(entries.map { $0 + "\n" }.joined().utf8), mode: 0o644, into: batch)
        }
        if try !layers.contains(where: { try $0.store.entry(at: policyPath, under: $0.filesystem) != nil }) {
            let script = "#!/bin/sh\n# Strata: no service starts while layers are configured, outside the appliance's init.\n"
                + "[ -n \"$\(configuringVariable)\" ] && exit 101\nexit 0\n"
            try tree.addFile(at: components(policyPath), contents: Array(script.utf8), mode: 0o755, into: batch)
        }
        return try tree.store(into: batch)
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
    static func conffileLines(_ bytes: [UInt8], layer: InstalledLayer) throws -> [String] {
        var lines: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 1, let path = words.first, path.hasPrefix("/") else { continue }
            guard let entry = try layer.store.entry(at: String(path.dropFirst()), under: layer.filesystem), entry.kind == .regular, let digest = entry.digest
            else { continue }
            lines.append("\(path) \(MD5.hex(try layer.store.read(digest)))")
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

extension ObjectStore {
    /// The entry at a relative path in a stored tree, or nil.
    func entry(at path: String, under root: TreeEntry) throws -> TreeEntry? {
        var current = root
        for name in path.split(separator: "/") {
            guard current.kind == .directory, let digest = current.digest, let next = try tree(digest).entry(named: String(name)) else { return nil }
            current = next
        }
        return current
    }
}
