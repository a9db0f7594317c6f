import ArgumentParser
import CLinux
import Foundation
import StrataBoot
import StrataLayers
import StrataStore
import VLFS

/// Network boot: which appliance a booting machine's MAC address names.
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Bind MAC addresses to appliances for network boot.",
        subcommands: [Register.self, List.self, Unregister.self, Show.self, Serve.self, MountAppliance.self, Keeper.self])

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

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What the boot service answers a machine booting with MAC: its iPXE script, or (--json) its description.",
            discussion: "An unregistered MAC, or an appliance whose LDF does not compose or carries no kernel, is refused with the reason the machine would show.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The interface's MAC address.") var mac: String
        @Option(help: "The boot service's URL as the machines reach it.") var service: String
        @Flag var json = false

        func run() throws {
            switch BootAnswers(home: options.strataHome, baseURL: service).answer(mac: mac) {
            case .appliance(let description):
                if json { return try printJSON(description) }
                print(BootAnswers.script(description), terminator: "")
            case .refused(let reason):
                throw LayerError(reason)
            }
        }
    }

    /// The initramfs's step (Boot/init): everything between a network and a root to switch into.
    struct MountAppliance: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mount",
            abstract: "On a network-booting appliance: fetch its description by MAC, make its Strata home and mount its VLFS. Prints NAME INIT: the appliance and what to run in it.",
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
            print("\(description.appliance) \(self.`init` ?? description.initProgram)")
        }
    }

    /// Stays in the initramfs's root after switch_root, where the appliance's disk is still reachable,
    /// and takes the machine down cleanly when the appliance asks: a word, `poweroff` or `reboot`, written
    /// into FIFO (the appliance's `/run/strata-shutdown`; a systemd appliance writes it from a
    /// system-shutdown hook). Then it syncs (the kernel hands the VLFS's dirty pages to the daemon, which
    /// writes them into the private layer), stops the daemon, unmounts the disk so that its ext4 is
    /// clean, and powers off or reboots. Its argv[0] starts with '@' like the daemon's, so an init
    /// following systemd's convention leaves it alive.
    struct Keeper: ParsableCommand {
        static let configuration = CommandConfiguration(shouldDisplay: false)
        @OptionGroup var options: HomeOptions
        @Option var fifo: String
        @Option var vlfs: String
        @Option var disk: String
        @Option(help: "A file made once the FIFO is open, for Boot/init to wait on.") var ready: String

        func run() throws {
            // Read-write: a FIFO opened so never reads EOF when a writer closes, and never blocks opening.
            let fd = open(fifo, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw LayerError("\(fifo): \(String(cString: strerror(errno)))") }
            try AtomicFile.write("", to: ready)
            var buffer = [UInt8](repeating: 0, count: 64)
            while true {
                let count = read(fd, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw LayerError("\(fifo): \(String(cString: strerror(errno)))") }
                let word = String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard word == "poweroff" || word == "reboot" else { continue }
                printError("strata-boot: \(word): syncing the VLFS, stopping its daemon, unmounting \(disk)")
                sync()
                if let daemon = try VLFSState(home: options.strataHome, name: vlfs).daemonProcess() {
                    // The appliance's root is busy until the power goes, so the daemon cannot unmount it;
                    // what it wrote is on the disk after the sync, and a kill closes its files.
                    kill(daemon, SIGTERM)
                    for _ in 0..<100 where VLFSState.isRunning(daemon) { usleep(50_000) }
                    if VLFSState.isRunning(daemon) {
                        printError("strata-boot: the VLFS daemon (pid \(daemon)) did not stop in 5 s; killing it")
                        kill(daemon, SIGKILL)
                        for _ in 0..<100 where VLFSState.isRunning(daemon) { usleep(50_000) }
                    }
                }
                if umount2(disk, 0) == 0 {
                    printError("strata-boot: \(disk) unmounted cleanly")
                } else {
                    // Something still holds it: read-only at least, so the journal is closed.
                    printError("strata-boot: umount \(disk): \(String(cString: strerror(errno))); remounting it read-only")
                    mount(nil, disk, nil, UInt(MS_REMOUNT | MS_RDONLY), nil)
                }
                sync()
                _ = word == "reboot" ? strata_restart() : strata_power_off()
            }
        }
    }
}
