import ArgumentParser
import Foundation
import StrataLayers
import StrataLifecycle
import StrataStore
import VLFS

/// An appliance as the fleet verbs report it: what it runs when mounted (as its daemon last composed
/// it) and what its LDF composes now, which it takes at its next mount or, mounted, at its next update.
struct ApplianceStatus: Encodable {
    var name: String
    var template: String
    var mac: String?
    var mounted: Bool
    /// Mounted on the kernel path (`mount --kernel`): no daemon, so no live update; it takes a new
    /// composition at its next mount.
    var kernelPath: Bool
    /// `REPO/NAME VERSION` of each layer the daemon (or the kernel path's mount) composed, when mounted.
    var running: [String]?
    /// What its LDF composes now.
    var composes: [String]
    /// `+ LAYER` / `- LAYER` between `running` and `composes`; empty when current or not mounted.
    var pending: [String]
    /// Why its LDF does not compose, if it does not.
    var error: String?
    /// `NAME PHASE` of each layer whose configuration scripts have not all succeeded (`strata configure NAME`).
    var unconfigured: [String]

    /// One status per appliance. Appliances with the same LDF text (`@TEMPLATE`) share one plan.
    static func all(_ appliances: [Appliance], registry: ApplianceRegistry, home: StrataHome) throws -> [ApplianceStatus] {
        var plans: [String: Result<[String], Error>] = [:]
        let mounts = MountTable.current()
        return try appliances.map { appliance in
            let ldf = registry.ldf(of: appliance.name)
            let text = (try? String(contentsOfFile: ldf, encoding: .utf8)) ?? ""
            let plan = plans[text] ?? Result { try Composition.plan(ldf: ldf, home: home).map(\.label).sorted() }
            plans[text] = plan
            let state = try VLFSState(home: home, name: appliance.name)
            let kernelPath = mounts.contains { KernelPath.isMount($0, of: state) }
            let mounted = kernelPath || state.daemonProcess() != nil
            let running = mounted ? state.composed()?.sorted() : nil
            let composes = (try? plan.get()) ?? []
            var pending: [String] = []
            if let running, case .success = plan {
                pending = composes.filter { !running.contains($0) }.map { "+ " + $0 } + running.filter { !composes.contains($0) }.map { "- " + $0 }
            }
            var error: String?
            if case .failure(let failure) = plan { error = "\(failure)" }
            let configuration = (try? ConfigurationState.load(state.configuration)) ?? ConfigurationState()
            let unconfigured = configuration.records.values.filter { $0.phase != .installed }.sorted { $0.name < $1.name }.map { "\($0.name) \($0.phase.rawValue)" }
            return ApplianceStatus(name: appliance.name, template: appliance.template, mac: appliance.mac, mounted: mounted,
                                   kernelPath: kernelPath, running: running, composes: composes, pending: pending, error: error, unconfigured: unconfigured)
        }
    }
}

struct ApplianceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "appliance", abstract: "List provisioned appliances.", subcommands: [List.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each appliance's template, MAC, whether it is mounted, and its layers: what it runs if mounted, else what its LDF composes.")
        @OptionGroup var options: HomeOptions
        @Option(help: "Only the appliance bound to this MAC address.") var mac: String?
        @Flag var json = false

        struct Row: Encodable {
            var name: String
            var template: String
            var mac: String?
            var mounted: Bool
            var kernelPath: Bool
            var layers: [String]
        }

        func run() throws {
            let home = options.strataHome
            let registry = try ApplianceRegistry(home: home)
            let appliances = try mac.map { mac in
                try registry.appliance(mac: try ApplianceRegistry.interfaceMAC(mac, what: "--mac")).map { [$0] } ?? []
            } ?? registry.all()
            let rows = try ApplianceStatus.all(appliances, registry: registry, home: home).map {
                Row(name: $0.name, template: $0.template, mac: $0.mac, mounted: $0.mounted, kernelPath: $0.kernelPath, layers: $0.running ?? $0.composes)
            }
            if json { return try printJSON(rows) }
            for row in rows {
                print("\(row.name)\t\(row.template)\t\(row.mac ?? "-")\t\(row.kernelPath ? "mounted (kernel path)" : row.mounted ? "mounted" : "not mounted")\t\(row.layers.joined(separator: ", "))")
            }
        }
    }
}

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fleet", abstract: "What the appliances run and what they will.", subcommands: [Status.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per appliance: its template, the layers it runs (mounted) or will compose (not mounted), and the changes pending.",
            discussion: """
                A mounted appliance is pending when its LDF (through its template) now composes other layers than its \
                daemon composed: it takes them at its next update, which a rewrite of the LDF or of a template it \
                includes starts by itself; one mounted on the kernel path (`mount --kernel`) takes them at \
                its next mount. Each line: NAME TEMPLATE STATE LAYERS, STATE one of current, pending, \
                pending-remount (kernel path), not-mounted, broken; then, if some layers' configuration scripts have not all succeeded, \
                'not configured:' and those layers with their state.
                """)
        @OptionGroup var options: HomeOptions
        @Flag var json = false

        func run() throws {
            let home = options.strataHome
            let registry = try ApplianceRegistry(home: home)
            let statuses = try ApplianceStatus.all(try registry.all(), registry: registry, home: home)
            if json { return try printJSON(statuses) }
            for status in statuses {
                let state = status.error != nil ? "broken" : !status.mounted ? "not-mounted" : status.pending.isEmpty ? "current"
                    : status.kernelPath ? "pending-remount" : "pending"
                let layers = status.error ?? (status.pending.isEmpty ? (status.running ?? status.composes).joined(separator: ", ") : status.pending.joined(separator: ", "))
                let configuration = status.unconfigured.isEmpty ? "" : "\tnot configured: " + status.unconfigured.joined(separator: ", ")
                print("\(status.name)\t\(status.template)\t\(state)\t\(layers)\(configuration)")
            }
        }
    }
}
