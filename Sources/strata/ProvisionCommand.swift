import ArgumentParser
import Foundation
import StrataLayers
import StrataStore
import VLFS

struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Provision appliances from a template: each gets an LDF that includes it and an empty private layer.",
        discussion: """
            Writes $STRATA_HOME/appliances/NAME.ldf ('@TEMPLATE') and the VLFS state of each NAME, and records them (with \
            the MAC, if given) in $STRATA_HOME/appliances.sqlite, all or none. Nothing is resolved: an appliance composes \
            its template's layers, and follows the template's changes. Mount one with \
            'strata mount $STRATA_HOME/appliances/NAME.ldf MOUNTPOINT'. Prints the names.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The appliances' names.") var names: [String]
    @Option(help: "The template (see 'strata template create').") var template: String
    @Option(help: "The appliance's MAC address (aa:bb:cc:dd:ee:ff), with one NAME only.") var mac: String?

    func validate() throws {
        guard !names.isEmpty else { throw ValidationError("name at least one appliance") }
        guard mac == nil || names.count == 1 else { throw ValidationError("--mac goes with a single appliance name, not \(names.count)") }
    }

    func run() throws {
        let home = options.strataHome
        let templateLDF = home.templateLDF(template)
        guard FileManager.default.fileExists(atPath: templateLDF) else {
            throw LayerError("template '\(template)' not found: no \(templateLDF) (make one with 'strata template create \(template) LDF')")
        }
        let mac = try self.mac.map { try ApplianceRegistry.interfaceMAC($0, what: "--mac") }
        var seen: Set<String> = []
        for name in names where !seen.insert(name).inserted { throw LayerError("appliance '\(name)' is named twice") }
        let registry = try ApplianceRegistry(home: home)
        let states = try names.map { try VLFSState(home: home, name: $0) }
        for state in states {
            let ldf = registry.ldf(of: state.name)
            if FileManager.default.fileExists(atPath: ldf) { throw LayerError("appliance '\(state.name)' exists already (\(ldf))") }
            if FileManager.default.fileExists(atPath: state.directory) {
                throw LayerError("a VLFS named '\(state.name)' exists already (\(state.directory))")
            }
        }
        try makeDirectories(home.path + "/appliances")
        try registry.add(names.map { Appliance(name: $0, template: template, mac: mac) }) {
            do {
                for state in states {
                    try makeDirectories(state.directory, mode: 0o700)
                    try makeDirectories(state.privateRoot, mode: 0o755)
                }
                try AtomicFile.writeAll(states.flatMap { state in
                    [(registry.ldf(of: state.name), Array("@\(template)\n".utf8)), (state.ldfRecord, Array("\(registry.ldf(of: state.name))\n".utf8))]
                })
            } catch {
                for state in states {
                    try? FileManager.default.removeItem(atPath: state.directory)
                    unlink(registry.ldf(of: state.name))
                }
                throw error
            }
        }
        print(names.joined(separator: "\n"))
    }
}
