import Foundation
import StrataLayers
import StrataStore

/// How far each layer of a VLFS is configured, kept in the VLFS's state directory
/// (`$STRATA_HOME/vlfs/NAME/configuration`, control-file syntax, rewritten atomically). It is the one
/// truth about configuration: the dpkg database the VLFS shows is generated from it and the stack, and
/// what dpkg writes into the private layer is folded back into it.
public struct ConfigurationState: Sendable, Equatable {
    /// dpkg's words for a package's state, used for every layer.
    public enum Phase: String, Sendable {
        /// Its pre-install failed: files present, to run pre-install again.
        case halfInstalled = "half-installed"
        /// Files present, pre-install done, not configured yet.
        case unpacked
        /// Its post-install failed: to configure again.
        case halfConfigured = "half-configured"
        /// Configured, with triggers still to run (dpkg's triggers-awaited and triggers-pending).
        case triggersAwaited = "triggers-awaited"
        case triggersPending = "triggers-pending"
        case installed
    }

    public struct Record: Sendable, Equatable {
        public var name: String
        public var version: String
        public var repository: String
        /// The layer instance (layer manifest digest) this record is about.
        public var digest: Digest
        public var phase: Phase
        /// The last version whose post-install succeeded, if any: an upgrade configures from it.
        public var configuredVersion: String?
        /// dpkg's trigger fields, carried as dpkg wrote them.
        public var triggersPending: String?
        public var triggersAwaited: String?
        /// The last failure, in words, for status output.
        public var problem: String?

        public init(name: String, version: String, repository: String, digest: Digest, phase: Phase, configuredVersion: String? = nil,
                    triggersPending: String? = nil, triggersAwaited: String? = nil, problem: String? = nil) {
            self.name = name
            self.version = version
            self.repository = repository
            self.digest = digest
            self.phase = phase
            self.configuredVersion = configuredVersion
            self.triggersPending = triggersPending
            self.triggersAwaited = triggersAwaited
            self.problem = problem
        }
    }

    /// Keyed by layer name: a VLFS has one unit of each layer.
    public var records: [String: Record]
    /// Packages dpkg knows that no layer provides (installed by hand inside the appliance): their
    /// status paragraphs, kept verbatim so `dpkg -l` keeps listing them.
    public var localPackages: [String: String]

    public init(records: [String: Record] = [:], localPackages: [String: String] = [:]) {
        self.records = records
        self.localPackages = localPackages
    }

    /// The state at `path`; empty when the VLFS was never configured.
    public static func load(_ path: String) throws -> ConfigurationState {
        guard FileManager.default.fileExists(atPath: path) else { return ConfigurationState() }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var state = ConfigurationState()
        for stanza in try ControlFile.parse(text, file: path) {
            if let local = stanza["Local-Package"] {
                state.localPackages[local] = stanza["Paragraph"] ?? ""
                continue
            }
            func required(_ field: String) throws -> String {
                guard let value = stanza[field] else { throw ParseError(file: path, line: stanza.line, message: "missing '\(field)'") }
                return value
            }
            func digest(_ text: String) throws -> Digest {
                guard let digest = Digest(text) else { throw ParseError(file: path, line: stanza.line(of: "Digest"), message: "bad digest '\(text)'") }
                return digest
            }
            guard let phase = Phase(rawValue: try required("State")) else {
                throw ParseError(file: path, line: stanza.line(of: "State"), message: "unknown state '\(stanza["State"]!)'")
            }
            let record = Record(name: try required("Layer"), version: try required("Version"), repository: try required("Repository"),
                                digest: try digest(try required("Digest")), phase: phase, configuredVersion: stanza["Config-Version"],
                                triggersPending: stanza["Triggers-Pending"], triggersAwaited: stanza["Triggers-Awaited"], problem: stanza["Problem"])
            state.records[record.name] = record
        }
        return state
    }

    public func save(to path: String) throws {
        var text = ""
        for record in records.values.sorted(by: { $0.name < $1.name }) {
            var fields = [("Layer", record.name), ("Version", record.version), ("Repository", record.repository),
                          ("Digest", record.digest.description), ("State", record.phase.rawValue)]
            if let value = record.configuredVersion { fields.append(("Config-Version", value)) }
            if let value = record.triggersPending { fields.append(("Triggers-Pending", value)) }
            if let value = record.triggersAwaited { fields.append(("Triggers-Awaited", value)) }
            if let value = record.problem { fields.append(("Problem", value)) }
            text += ControlFile.paragraph(fields) + "\n"
        }
        for (name, paragraph) in localPackages.sorted(by: { $0.key < $1.key }) {
            text += ControlFile.paragraph([("Local-Package", name), ("Paragraph", "\n" + paragraph)]) + "\n"
        }
        try AtomicFile.write(Array(text.utf8), to: path, mode: 0o600)
    }

    // MARK: Carried by configuration layers

    /// The metadata field in which a template's configuration layer names the layer instances whose
    /// configuration it holds (`REPO/NAME VERSION DIGEST` a line): an appliance built on the template
    /// takes them as configured instead of running their scripts again (and a newer instance than the
    /// one named as an upgrade from it).
    public static let configuredLayersField = "Configured-Layers"

    /// The field for a configuration layer made from a template whose state is `state`, on top of the
    /// configuration layer `previous` (whose configured layers it carries on where the state has none).
    public static func carried(_ state: ConfigurationState, previous: LayerMetadata?) -> [MetadataField] {
        var records = previous.map(configuredLayers) ?? [:]
        for record in state.records.values where record.phase == .installed { records[record.name] = record }
        guard !records.isEmpty else { return [] }
        let value = records.values.sorted { $0.name < $1.name }.map { "\($0.repository)/\($0.name) \($0.version) \($0.digest)" }.joined(separator: "\n")
        return [MetadataField(configuredLayersField, "\n" + value)]
    }

    /// The configured layer instances a configuration layer's metadata names, as records.
    public static func configuredLayers(_ metadata: LayerMetadata) -> [String: Record] {
        guard let value = metadata.extraFields.first(where: { $0.name.caseInsensitiveCompare(configuredLayersField) == .orderedSame })?.value else { return [:] }
        var records: [String: Record] = [:]
        for line in value.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 3, let slash = words[0].firstIndex(of: "/"), let digest = Digest(words[2]) else { continue }
            let name = String(words[0][words[0].index(after: slash)...])
            records[name] = Record(name: name, version: String(words[1]), repository: String(words[0][..<slash]), digest: digest,
                                   phase: .installed, configuredVersion: String(words[1]))
        }
        return records
    }
}
