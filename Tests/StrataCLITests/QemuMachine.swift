import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A qemu x86-64 machine for the network-boot tests: TCG (no KVM here), qemu's user-mode network
/// only (10.0.2.2 is the host's 127.0.0.1; nothing leaves the machine), a virtio NIC whose iPXE ROM
/// boots from `bootfile`, a virtio disk, and the serial console on the test's pipes: `console` is
/// everything it printed, `type` writes a line to it. `graphics=off` has SeaBIOS and iPXE print to the
/// serial console too (so an iPXE script's `echo` reaches `console`). The machine is killed when released.
final class QemuMachine: Sendable {
    private let process: Process
    private let input: FileHandle
    /// What the console printed, appended by a reader thread that outlives nothing but the pipe.
    private final class Console: Sendable { let text = Mutex("") }
    private let output = Console()
    let hostPort: Int

    /// - Parameters:
    ///   - bootfile: the URL iPXE fetches first (DHCP's boot file name), or nil with `direct`.
    ///   - direct: a kernel, its initrds and command line, for a boot without the boot service.
    init(mac: String, disk: String, bootfile: String?, direct: (kernel: String, initrds: [String], commandLine: String)? = nil) throws {
        hostPort = try freePort()
        var network = "user,id=n0,hostfwd=tcp:127.0.0.1:\(hostPort)-:80"
        if let bootfile { network += ",bootfile=\(bootfile)" }
        var arguments = ["-machine", "graphics=off", "-m", "1536", "-smp", "1", "-display", "none", "-no-reboot", "-monitor", "none", "-serial", "stdio",
                         "-netdev", network, "-device", "virtio-net-pci,netdev=n0,mac=\(mac)",
                         "-drive", "file=\(disk),if=virtio,format=raw"]
        if let direct {
            // One initrd file: qemu's -initrd takes a single one, and the kernel unpacks concatenated archives.
            let combined = disk + ".initrd"
            try shell("cat \(direct.initrds.map { "'\($0)'" }.joined(separator: " ")) > '\(combined)'")
            arguments += ["-kernel", direct.kernel, "-initrd", combined, "-append", direct.commandLine]
        } else {
            arguments += ["-boot", "n"]
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-system-x86_64")
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        input = stdin.fileHandleForWriting
        try process.run()
        let reader = stdout.fileHandleForReading
        let output = output
        Thread {
            while true {
                let data = reader.availableData
                if data.isEmpty { return }
                output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }.start()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var console: String { output.text.withLock { $0 } }

    /// Waits until the console shows `text` (after `from` characters); false after `seconds`.
    func waitFor(_ text: String, from: Int = 0, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let shown = console
            if shown.count > from, shown.dropFirst(from).contains(text) { return true }
            if !process.isRunning { return console.dropFirst(from).contains(text) }
            usleep(200_000)
        }
        return false
    }

    func type(_ line: String) { input.write(Data((line + "\n").utf8)) }

    /// Waits for the machine to power off; false after `seconds`.
    func waitForPowerOff(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(200_000) }
        return !process.isRunning
    }

    /// GET through the port forward to the appliance's port 80.
    func fetch(_ path: String) -> String? {
        try? shell("curl -s -f -m 10 http://127.0.0.1:\(hostPort)\(path)")
    }
}
