import Foundation
import StrataHTTP
import StrataLayers
import StrataStore
import VLFS

/// What the boot service answers, made from the home it serves: which appliance a MAC address names
/// (`appliances.sqlite`), its LDF and templates, the kernel its own layers carry, and the URLs under
/// which the service serves the rest. Everything here is computed per request from the home as it
/// is then, so an LDF edit (a kernel or template upgrade) reaches the next boot.
public struct BootAnswers: Sendable {
    public let home: StrataHome
    /// The service as the booting machines reach it (`http://10.0.2.2:8080` from a qemu guest).
    public let baseURL: String

    public init(home: StrataHome, baseURL: String) {
        self.home = home
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }

    /// URL paths of what the service serves.
    public static let chainPath = "/boot.ipxe"
    public static let bootPath = "/boot"
    public static let initramfsPath = "/initramfs.cpio.gz"
    public static let modulesPath = "/modules.cpio.gz"
    public static func repositoryPath(_ name: String) -> String { "/repos/\(name)/" }

    /// iPXE's first request: a script that chains to this machine's own, by the MAC of the interface it booted from.
    public var chainScript: String {
        "#!ipxe\necho Strata: asking \(baseURL) for this machine's appliance (${netX/mac})\nchain \(baseURL)\(Self.bootPath)?mac=${netX/mac}\n"
    }

    public enum Answer: Sendable {
        case appliance(BootDescription)
        /// No appliance: why, for the machine's console and the administrator's log.
        case refused(String)
    }

    /// The description for `mac`, or why there is none (not a MAC, not bound, an LDF that does not compose).
    public func answer(mac text: String) -> Answer {
        let mac: String
        do { mac = try ApplianceRegistry.interfaceMAC(text, what: "MAC") } catch { return .refused("\(error)") }
        do {
            let registry = try ApplianceRegistry(home: home)
            guard let appliance = try registry.appliance(mac: mac) else {
                return .refused("MAC \(mac) is not registered: bind it to an appliance with 'strata boot register \(mac) NAME'")
            }
            return .appliance(try describe(appliance, ldf: registry.ldf(of: appliance.name)))
        } catch {
            return .refused("MAC \(mac): \(error)")
        }
    }

    func describe(_ appliance: Appliance, ldf: String) throws -> BootDescription {
        guard let mac = appliance.mac else { throw LayerError("appliance '\(appliance.name)' has no MAC") }
        let expanded = try home.loadExpanded(ldf)
        var templates: [String: String] = [:]
        for file in expanded.includeOrder.dropLast() {
            let name = file.deletingPathExtension().lastPathComponent
            // Only the home's templates travel: the appliance's home has nothing else to resolve an include by.
            guard file.standardizedFileURL.path == URL(fileURLWithPath: home.templateLDF(name)).standardizedFileURL.path else {
                throw LayerError("\(ldf) includes \(file.path), which is not one of the home's templates")
            }
            templates[name] = try String(contentsOf: file, encoding: .utf8)
        }
        let plan = try Composition.plan(ldf: ldf, home: home)
        let kernel = try self.kernel(in: plan, appliance: appliance.name)
        var repositories: [BootDescription.ServedRepository] = []
        for (name, location) in try home.repositories() where plan.contains(where: { $0.repositoryName == name }) {
            repositories.append(.init(name: name, url: HTTPLocation.isRemote(location) ? location : baseURL + Self.repositoryPath(name)))
        }
        let commandLine = "console=ttyS0 quiet strata.service=\(baseURL) strata.appliance=\(appliance.name) BOOTIF=01-\(mac.replacingOccurrences(of: ":", with: "-"))"
        return BootDescription(appliance: appliance.name, mac: mac, template: appliance.template,
                               kernel: kernel, initrds: [baseURL + Self.initramfsPath, baseURL + Self.modulesPath + "?appliance=\(appliance.name)"],
                               commandLine: commandLine, initProgram: "/sbin/init", repositories: repositories,
                               ldf: try String(contentsOfFile: ldf, encoding: .utf8), templates: templates)
    }

    /// The URL of the kernel the appliance's own layers carry (`/boot/vmlinuz-*`): the blob in its
    /// repository, served as static content like every other object.
    func kernel(in plan: [Composition.PlannedLayer], appliance: String) throws -> String {
        guard let found = try kernelLayer(in: plan) else {
            throw LayerError("appliance '\(appliance)' composes no kernel: none of its layers has /boot/vmlinuz-* (add debian/linux-image-amd64 to its template)")
        }
        let base = try home.location(of: found.layer.repositoryName)
        let root = HTTPLocation.isRemote(base) ? (base.hasSuffix("/") ? String(base.dropLast()) : base)
            : baseURL + String(Self.repositoryPath(found.layer.repositoryName).dropLast())
        return root + "/objects/sha256/" + found.blob.hex.prefix(2) + "/" + found.blob.hex.dropFirst(2)
    }

    /// The first layer of the plan holding `/boot/vmlinuz-*`, with that file's blob.
    public func kernelLayer(in plan: [Composition.PlannedLayer]) throws -> (layer: Composition.PlannedLayer, version: String, blob: Digest)? {
        for layer in plan {
            let manifest = try layer.repository.layerManifest(layer.record)
            var lookup = TreeLookup(store: layer.repository.store)
            guard let boot = try lookup.entry(at: "boot", under: manifest.filesystem), let digest = boot.digest, boot.kind == .directory else { continue }
            let tree = try lookup.tree(digest)
            if let image = tree.entries.first(where: { $0.name.hasPrefix("vmlinuz-") && $0.kind == .regular }), let blob = image.digest {
                return (layer, String(image.name.dropFirst("vmlinuz-".count)), blob)
            }
        }
        return nil
    }

    /// The iPXE script that boots a described appliance.
    public static func script(_ description: BootDescription) -> String {
        var lines = ["#!ipxe", "echo Strata: booting appliance \(description.appliance) (template \(description.template))",
                     "kernel \(description.kernel) \(description.commandLine)"]
        lines += description.initrds.map { "initrd \($0)" }
        lines.append("boot")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The iPXE script a refused machine gets: it says why on the console and waits, rather than
    /// falling through to the next boot device or retrying in a loop that floods the service.
    public static func refusalScript(_ reason: String) -> String {
        let safe = reason.map { "$\\{}\n\r".contains($0) ? " " : $0 }
        return "#!ipxe\necho Strata: this machine cannot boot: \(String(safe))\necho Strata: waiting; reset the machine once it is registered\n:wait\nsleep 3600\ngoto wait\n"
    }
}
