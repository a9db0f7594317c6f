import ArgumentParser
import Foundation
import StrataBoot
import StrataLayers

/// Network boot: which appliance a booting machine's MAC address names.
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Bind MAC addresses to appliances for network boot.",
        subcommands: [Register.self, List.self, Unregister.self, MountAppliance.self])

    struct Register: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bind a MAC address to a provisioned appliance: a machine booting from that interface mounts its VLFS.",
            discussion: """
                MAC is six pairs of hex digits separated by ':' or '-', any case; it is kept lowercase with ':'. Refuses an \
                appliance that is not provisioned, a MAC bound to another appliance and an appliance bound to another MAC. \
                'strata provision NAME --mac MAC' binds at provisioning.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The interface's MAC address (aa:bb:cc:dd:ee:ff).") var mac: String
        @Argument(help: "The appliance (see 'strata provision').") var name: String

        func run() throws {
            let mac = try ApplianceRegistry.interfaceMAC(self.mac, what: "MAC")
            try ApplianceRegistry(home: options.strataHome).bind(mac: mac, to: name)
            print("\(mac)\t\(name)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The MAC addresses bound to appliances: MAC NAME TEMPLATE per line.")
        @OptionGroup var options: HomeOptions
        @Flag var json = false

        struct Binding: Encodable {
            var mac: String
            var name: String
            var template: String
        }

        func run() throws {
            let bindings = try ApplianceRegistry(home: options.strataHome).all().compactMap { appliance in
                appliance.mac.map { Binding(mac: $0, name: appliance.name, template: appliance.template) }
            }.sorted { $0.mac < $1.mac }
            if json { return try printJSON(bindings) }
            for binding in bindings { print("\(binding.mac)\t\(binding.name)\t\(binding.template)") }
        }
    }

    struct Unregister: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unbind a MAC address: a machine booting from it is refused; the appliance stays. Prints MAC NAME.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The interface's MAC address.") var mac: String

        func run() throws {
            let mac = try ApplianceRegistry.interfaceMAC(self.mac, what: "MAC")
            let name = try ApplianceRegistry(home: options.strataHome).unbind(mac: mac)
            print("\(mac)\t\(name)")
        }
    }

    /// The initramfs's step (Boot/init): everything between a network and a root to switch into.
    struct MountAppliance: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mount",
            abstract: "On a network-booting appliance: fetch its description by MAC, make its Strata home and mount its VLFS. Prints the init to run in it.",
            discussion: """
                Asks the boot service at SERVICE for the description of the appliance MAC names, writes the home it makes                 (--home, on the appliance's disk: repositories by the service's URLs, templates, the appliance's LDF, the                 description kept as boot/description.json) and mounts the appliance's VLFS at MOUNTPOINT, fetching into the                 home's mirrors only the objects they do not hold yet. The daemon names itself '@strata', so that it                 survives the appliance's init at shutdown. If the service cannot be reached, the description kept by the                 last boot is used, and the VLFS mounts from the disk's cache if it holds every layer (it says so on                 stderr). A machine the service refuses (an unregistered MAC) does not boot.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The boot service's URL (http://HOST:PORT).") var service: String
        @Argument(help: "An existing, empty directory: the new root.") var mountpoint: String
        @Option(help: "This machine's MAC address.") var mac: String
        @Option(help: "The init to print instead of the description's.") var `init`: String?

        func run() throws {
            let mac = try ApplianceRegistry.interfaceMAC(self.mac, what: "--mac")
            let appliance = ApplianceHome(home: options.strataHome)
            let (description, source) = try appliance.fetchDescription(service: service, mac: mac)
            switch source {
            case .service:
                try appliance.write(description)
                try appliance.refreshMirrors(description)
            case .diskCache(let reason):
                printError("strata boot: the boot service is unreachable (\(reason)): booting \(description.appliance) from the disk's cache")
                try appliance.write(description)
            }
            printError("strata boot: mounting appliance \(description.appliance) (template \(description.template)) at \(mountpoint)")
            let mount = try Mount.parse([appliance.ldf(of: description), mountpoint, "--name", description.appliance,
                                         "--home", options.strataHome.path, "--root-storage"])
            try mount.run()
            print(self.`init` ?? description.initProgram)
        }
    }
}
