import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Network boot end to end under qemu: an appliance with an empty disk boots from `strata boot serve`
/// on loopback, mounts a VLFS of real Debian layers, serves a page with busybox's httpd (Debian's
/// `busybox`), keeps what it wrote across a reboot, follows its template's upgrade at the next boot,
/// boots from its disk's cache when the service is down, and an unknown MAC is refused on the console.
@Suite(.serialized) struct NetworkBootTests {
    /// One home for every run (`/tmp/strata-test-boot-home`): `main` (the site layers), `debian` (the
    /// machine's apt indexes, the layers fetched once) and the template `web`, configured once and promoted.
    static let home = "/tmp/strata-test-boot-home"
    static let bootDirectory = packageRoot + "/Boot"

    static func strata(_ arguments: String...) throws -> Execution {
        try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home])
    }

    /// The home `Boot/example-template.sh` makes (the demo's and benchmarks/netboot.sh's): the site layer
    /// `main/boot-site` 1 and 2 (busybox's httpd serving "site VERSION", and the appliance's init, which
    /// starts it, gives the console a shell, and when that ends asks the keeper for a clean poweroff), and
    /// the template `web` (Debian's busybox and cloud kernel, the required base, site 1) configured once
    /// and promoted. A previous run's upgrade of the template is undone.
    static func prepareHome() throws {
        expectSuccess(try execute("/bin/sh", [bootDirectory + "/example-template.sh", strataExecutable, "1", "2"],
                                  environment: ["STRATA_HOME": home]))
        expectSuccess(try strata("ldf", "add", home + "/templates/web.ldf", "main/boot-site=1"))
    }

    /// The initramfs with the binary under test (its Swift runtime and other libraries copied as ldd names them).
    static func initramfs(in directory: String) throws -> String {
        let path = directory + "/initramfs.cpio.gz"
        try shell("sh '\(bootDirectory)/build-initramfs.sh' '\(path)' --strata '\(strataExecutable)'")
        return path
    }

    @Test func anApplianceBootsFromAnEmptyDiskKeepsItsFilesAndFollowsItsTemplate() throws {
        try Self.prepareHome()
        let scratch = try TemporaryDirectory("netboot")
        let logFile = scratch.path + "/serve.log"
        let service = try BootService(home: Self.home, initramfs: try Self.initramfs(in: scratch.path), advertise: "10.0.2.2", log: logFile)
        let name = "boot\(getpid())"
        let mac = String(format: "52:54:00:%02x:%02x:%02x", (getpid() >> 16) & 0xff, (getpid() >> 8) & 0xff, getpid() & 0xff)
        expectSuccess(try Self.strata("provision", name, "--template", "web", "--mac", mac))
        defer { _ = try? shell("rm -rf '\(Self.home)/vlfs/\(name)' '\(Self.home)/appliances/\(name).ldf'; true") }
        defer { _ = try? Self.strata("boot", "unregister", mac) }
        let disk = scratch.path + "/disk.img"
        try shell("truncate -s 3G '\(disk)'")
        let bootfile = service.url

        // First boot, empty disk: ext4 made, the layers fetched into the disk's cache, the site served.
        do {
            let machine = try QemuMachine(mac: mac, disk: disk, bootfile: bootfile)
            #expect(machine.waitFor("appliance: httpd serving site 1", seconds: 900), "\(machine.console.suffix(3000))\n\(service.serverLog.suffix(2000))")
            #expect(machine.console.contains("first boot: making ext4"))
            #expect(machine.fetch("/") == "site 1\n")
            // Written through the VLFS into the private layer on the disk, then a clean poweroff.
            machine.type("echo kept > /srv/www/kept.html && echo written")
            #expect(machine.waitFor("written", from: machine.console.count, seconds: 60))
            machine.type("exit")
            #expect(machine.waitForPowerOff(seconds: 120), "\(machine.console.suffix(2000))")
            #expect(machine.console.contains("/disk unmounted cleanly"), "\(machine.console.suffix(2000))")
        }

        // The template is upgraded on the host (an LDF edit); the next boot runs the new layer version,
        // over the private layer of the first boot, from the cache plus what changed.
        expectSuccess(try Self.strata("ldf", "add", Self.home + "/templates/web.ldf", "main/boot-site=2"))
        do {
            let machine = try QemuMachine(mac: mac, disk: disk, bootfile: bootfile)
            #expect(machine.waitFor("appliance: httpd serving site 2", seconds: 300), "\(machine.console.suffix(3000))")
            #expect(!machine.console.contains("first boot"), "the disk was kept")
            #expect(machine.fetch("/") == "site 2\n")
            #expect(machine.fetch("/kept.html") == "kept\n")
            machine.type("exit")
            #expect(machine.waitForPowerOff(seconds: 120))
        }

        // The service is down: the machine starts the same kernel and initramfs by itself (as a local
        // loader would), finds no service, and boots from what its disk holds.
        let shown = try JSONSerialization.jsonObject(with: Data(expectSuccess(try Self.strata("boot", "show", mac, "--service", service.base, "--json")).stdout.utf8)) as? [String: Any]
        let commandLine = try #require(shown?["commandLine"] as? String), kernelURL = try #require(shown?["kernel"] as? String)
        let kernel = scratch.path + "/vmlinuz", modules = scratch.path + "/modules.cpio.gz"
        try shell("curl -s -f -o '\(kernel)' '\(service.local(kernelURL))' && curl -s -f -o '\(modules)' '\(service.local(service.base))/modules.cpio.gz?appliance=\(name)'")
        service.stop()
        do {
            let machine = try QemuMachine(mac: mac, disk: disk, bootfile: nil,
                                          direct: (kernel, [scratch.path + "/initramfs.cpio.gz", modules], commandLine))
            #expect(machine.waitFor("appliance: httpd serving site 2", seconds: 300), "\(machine.console.suffix(3000))")
            #expect(machine.console.contains("the boot service is unreachable"))
            #expect(machine.console.contains("from the disk's cache"))
            #expect(machine.fetch("/kept.html") == "kept\n")
            machine.type("exit")
            #expect(machine.waitForPowerOff(seconds: 120))
        }
    }

    @Test func anUnknownMACIsRefusedOnTheConsoleAndInTheLog() throws {
        let scratch = try TemporaryDirectory("netboot-unknown")
        let logFile = scratch.path + "/serve.log"
        try Self.prepareHome()
        let service = try BootService(home: Self.home, initramfs: try Self.initramfs(in: scratch.path), advertise: "10.0.2.2", log: logFile)
        let disk = scratch.path + "/disk.img"
        try shell("truncate -s 64M '\(disk)'")
        let machine = try QemuMachine(mac: "52:54:00:ee:ee:ee", disk: disk, bootfile: service.url)
        #expect(machine.waitFor("this machine cannot boot: MAC 52:54:00:ee:ee:ee is not registered", seconds: 120), "\(machine.console.suffix(2000))")
        #expect(service.serverLog.contains("refused a machine: MAC 52:54:00:ee:ee:ee is not registered"))
    }
}
