import Foundation
import StrataHTTP
import StrataLayers

/// What the boot service tells a booting machine about the appliance its MAC address names
/// (`GET /boot/MAC` with `Accept: application/json`): how iPXE boots it (kernel, initrds, command
/// line), and what the initramfs needs to mount its VLFS — the appliance's LDF, the templates it
/// includes (recursively) and the repositories its layers come from, each by the URL the service
/// serves it at. The appliance keeps its own Strata home on its disk made of these.
public struct BootDescription: Codable, Sendable, Equatable {
    public struct ServedRepository: Codable, Sendable, Equatable {
        public var name: String
        public var url: String

        public init(name: String, url: String) {
            self.name = name
            self.url = url
        }
    }

    public var appliance: String
    public var mac: String
    public var template: String
    public var kernel: String
    public var initrds: [String]
    public var commandLine: String
    /// What the initramfs execs in the VLFS once it is the root.
    public var initProgram: String
    public var repositories: [ServedRepository]
    /// The text of `appliances/NAME.ldf`.
    public var ldf: String
    /// Template name → the text of `templates/NAME.ldf`, for every template the LDF includes.
    public var templates: [String: String]

    public init(appliance: String, mac: String, template: String, kernel: String, initrds: [String], commandLine: String,
                initProgram: String, repositories: [ServedRepository], ldf: String, templates: [String: String]) {
        self.appliance = appliance
        self.mac = mac
        self.template = template
        self.kernel = kernel
        self.initrds = initrds
        self.commandLine = commandLine
        self.initProgram = initProgram
        self.repositories = repositories
        self.ldf = ldf
        self.templates = templates
    }

    /// A description larger than this is refused: LDFs of a few hundred layers make a few tens of KB.
    public static let sizeLimit = 1 << 20

    /// Reads a description as the appliance must: from a network it does not trust. Every name becomes a
    /// file name in the appliance's home, so each is checked as the home checks it; every URL must be
    /// http(s); the init must be an absolute path. Errors name `source` and the field.
    public static func decode(_ bytes: [UInt8], from source: String) throws -> BootDescription {
        guard bytes.count <= sizeLimit else { throw LayerError("\(source): a boot description of \(bytes.count) bytes (at most \(sizeLimit))") }
        let description: BootDescription
        do {
            description = try JSONDecoder().decode(BootDescription.self, from: Data(bytes))
        } catch {
            throw LayerError("\(source): not a boot description: \(error)")
        }
        try description.check(source: source)
        return description
    }

    func check(source: String) throws {
        func refuse(_ field: String, _ problem: String) -> LayerError { LayerError("\(source): \(field): \(problem)") }
        guard (try? StrataHome.checkName(appliance)) != nil else {
            throw refuse("appliance", "'\(appliance)' is not an appliance name (a letter or digit, then letters, digits, '-', '_' and '.')")
        }
        for name in templates.keys {
            do { try StrataHome.checkTemplateName(name) } catch { throw refuse("templates", "\(error)") }
        }
        var seen: Set<String> = []
        for repository in repositories {
            do { try StrataHome.checkName(repository.name) } catch { throw refuse("repositories", "\(error)") }
            guard seen.insert(repository.name).inserted else { throw refuse("repositories", "'\(repository.name)' named twice") }
            guard HTTPLocation.isRemote(repository.url), (try? HTTPLocation(repository.url)) != nil else {
                throw refuse("repositories", "'\(repository.name)': '\(repository.url)' is not an http(s) URL")
            }
        }
        guard initProgram.hasPrefix("/"), !initProgram.contains(where: { $0.isWhitespace || $0 == "\0" }) else {
            throw refuse("initProgram", "'\(initProgram)' is not an absolute path")
        }
        guard ApplianceRegistry.normalizedMAC(mac) == mac else { throw refuse("mac", "'\(mac)' is not a normalised MAC address") }
    }
}
