import Foundation
import StrataHTTP
import StrataLayers
import StrataStore

/// The Strata home a network-booted appliance keeps on its own disk: its description from the boot
/// service (`boot/description.json`, the last one received), made into a home — `repositories`
/// naming the served repositories, `templates/`, and `appliances/NAME.ldf` — whose mirrors
/// (`mirrors/NAME`) are the object cache that later boots reuse.
public struct ApplianceHome {
    public let home: StrataHome

    public init(home: StrataHome) { self.home = home }

    public var descriptionFile: String { home.path + "/boot/description.json" }
    public func ldf(of description: BootDescription) -> String { home.path + "/appliances/\(description.appliance).ldf" }

    /// How the description was had: from the service, or from the disk when the service did not answer.
    public enum Source: Equatable { case service, diskCache(reason: String) }

    /// The description of the appliance `mac` names, from the boot service at `service`; when the
    /// service cannot be reached (or answers with a server error), the one this disk kept from the last
    /// boot, if any. A refusal (the MAC is not registered) is final: the cache is not used then, so an
    /// unregistered machine stops booting.
    public func fetchDescription(service: String, mac: String) throws -> (BootDescription, Source) {
        let location = try HTTPLocation(service)
        let client = HTTPClient(location: location, timeout: 10)
        let relative = String(BootAnswers.bootPath.dropFirst()) + "?mac=" + mac
        let url = location.url(relative)
        let answer: (HTTPClient.Response, [UInt8])
        do {
            answer = try client.get(relative, headers: [("Accept", "application/json")], limit: BootDescription.sizeLimit)
        } catch let error as NetworkError {
            return try cached(reason: "\(error)")
        }
        let (response, body) = answer
        if response.status >= 500 { return try cached(reason: "\(url): \(response.status) \(response.reason)") }
        guard response.status == 200 else {
            let why = String(decoding: body.prefix(1024), as: UTF8.self).filter { !$0.isNewline || $0 == "\n" }
            throw LayerError("\(url): the boot service refused this machine (\(response.status) \(response.reason)): \(why)")
        }
        let description = try BootDescription.decode(body, from: url)
        guard description.mac == mac else { throw LayerError("\(url): a description for MAC \(description.mac), not \(mac)") }
        try makeDirectories(home.path + "/boot")
        try AtomicFile.write(body, to: descriptionFile)
        return (description, .service)
    }

    private func cached(reason: String) throws -> (BootDescription, Source) {
        guard let bytes = FileManager.default.contents(atPath: descriptionFile) else {
            throw LayerError("the boot service is unreachable (\(reason)) and this disk holds no description from an earlier boot")
        }
        return (try BootDescription.decode(Array(bytes), from: descriptionFile), .diskCache(reason: reason))
    }

    /// Writes the home the description makes: the repositories by the service's URLs (in its order,
    /// which is their priority), the templates and the appliance's LDF, each file atomically. Files of
    /// templates the description no longer names are removed, so an include that went away cannot
    /// be satisfied by a stale copy.
    public func write(_ description: BootDescription) throws {
        try makeDirectories(home.templatesDirectory)
        try makeDirectories(home.path + "/appliances")
        var files: [(path: String, bytes: [UInt8])] = [
            (home.repositoriesFile, Array(("# written by strata boot mount from the boot service's description\n"
                + description.repositories.map { "\($0.name) \($0.url)\n" }.joined()).utf8)),
            (ldf(of: description), Array(description.ldf.utf8)),
        ]
        for (name, text) in description.templates.sorted(by: { $0.key < $1.key }) { files.append((home.templateLDF(name), Array(text.utf8))) }
        try AtomicFile.writeAll(files)
        for file in (try? FileManager.default.contentsOfDirectory(atPath: home.templatesDirectory)) ?? []
        where file.hasSuffix(".ldf") && description.templates[String(file.dropLast(4))] == nil {
            unlink(home.templatesDirectory + "/" + file)
        }
    }

    /// Opens each repository's mirror, fetching its index the first time and again when it changed.
    public func refreshMirrors(_ description: BootDescription) throws {
        for repository in description.repositories {
            let mirror = try home.repository(repository.name)
            try RepositoryMirror.refreshIndex(of: mirror, trust: try home.trust(of: repository.name))
        }
    }
}
