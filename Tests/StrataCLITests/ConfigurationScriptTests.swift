import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Strata-format layers' configuration scripts: run inside the mounted VLFS, in dependency order, with
/// dpkg's arguments, their writes in the private layer; a failure reported and tried again.
@Suite(.serialized) struct ConfigurationScriptTests {
    /// A VLFS of Strata-format layers only: libc and busybox (files of the distribution's packages,
    /// imported as plain layers) for a shell, and layers whose scripts log how they were called.
    final class Appliance: Sendable {
        let workspace: Workspace
        let ldf: String
        let mountpoint: String

        init(_ label: String = #function) throws {
            workspace = try Workspace(label)
            let debs = try downloadedPackages(["libc6", "busybox"])
            let shell = workspace.scratch.path + "/shell"
            for deb in debs { try StrataTestSupport.shell("dpkg-deb -x '\(deb)' '\(shell)'") }
            try StrataTestSupport.shell("ln -s busybox '\(shell)/bin/sh' && for tool in cat echo mkdir; do ln -s busybox '\(shell)/bin/'$tool; done")
            expectSuccess(try workspace.strata("layer", "import", "main", shell, "--name", "shell", "--version", "1"))
            ldf = workspace.scratch.path + "/appliance.ldf"
            mountpoint = workspace.scratch.path + "/mnt"
            try makeDirectories(mountpoint)
        }

        /// A layer whose four scripts append `NAME SCRIPT ARGUMENTS` to /var/log/calls; `failing` names
        /// scripts that then exit 1.
        func layer(_ name: String, _ version: String, depends: String? = nil, preDepends: String? = nil, failing: Set<String> = []) throws {
            let unit = workspace.scratch.path + "/units/\(name)_\(version)"
            try makeDirectories(unit + "/filesystem/usr/share/\(name)")
            try makeDirectories(unit + "/scripts")
            try AtomicFile.write("\(name) \(version)\n", to: unit + "/filesystem/usr/share/\(name)/version")
            var metadata = "Layer: \(name)\nVersion: \(version)\n"
            if let depends { metadata += "Depends: \(depends)\n" }
            if let preDepends { metadata += "Pre-Depends: \(preDepends)\n" }
            try AtomicFile.write(metadata, to: unit + "/metadata")
            for script in ["pre-install", "post-install", "pre-remove", "post-remove"] {
                let text = "#!/bin/sh\nmkdir -p /var/log\necho \"\(name) \(script) $*\" >> /var/log/calls\n" + (failing.contains(script) ? "exit 1\n" : "exit 0\n")
                try AtomicFile.write(text, to: unit + "/scripts/\(script)", mode: 0o755)
            }
            expectSuccess(try workspace.strata("layer", "import", "main", unit))
        }

        func write(_ layers: [String]) throws { try AtomicFile.write((["main/shell"] + layers).joined(separator: "\n") + "\n", to: ldf) }
        func calls() throws -> [String] {
            ((try? String(contentsOfFile: mountpoint + "/var/log/calls", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        func configuration() throws -> String { try workspace.strata("configure", "appliance").stdout }
        func update() throws -> Execution { try workspace.strata("update", "appliance") }
    }

    @Test func scriptsRunInDependencyOrderWithDpkgsArgumentsAndFailuresAreRetried() throws {
        let appliance = try Appliance("cfg")
        // app pre-depends on runtime, which depends on base: base, runtime, app, whatever their names.
        try appliance.layer("app", "1", preDepends: "runtime")
        try appliance.layer("runtime", "1", depends: "base")
        try appliance.layer("base", "1")
        try appliance.layer("broken", "1", failing: ["post-install"])
        try appliance.write(["main/app 1", "main/runtime 1", "main/base 1", "main/broken 1"])
        let mounted = try appliance.workspace.strata("mount", appliance.ldf, appliance.mountpoint, "--name", "appliance")
        defer { _ = try? appliance.workspace.strata("umount", appliance.mountpoint) }
        expectSuccess(mounted)
        #expect(mounted.stderr.contains("broken: post-install configure failed (exit status 1)"), "\(mounted.stderr)")
        let first = try appliance.calls()
        let preInstalls = first.filter { $0.contains("pre-install") }, postInstalls = first.filter { $0.contains("post-install") }
        for (calls, arguments) in [(preInstalls, "pre-install install"), (postInstalls, "post-install configure")] {
            let order = ["base", "runtime", "app"].compactMap { calls.firstIndex(of: "\($0) \(arguments)") }
            #expect(calls.count == 4 && calls.contains("broken \(arguments)") && order.count == 3 && order == order.sorted(), "\(first)")
        }
        #expect(first.firstIndex(of: "app pre-install install")! < first.firstIndex(of: "base post-install configure")!, "every pre-install before any post-install")
        // The scripts wrote through the VLFS, into the private layer only.
        #expect(FileManager.default.fileExists(atPath: appliance.workspace.home + "/vlfs/appliance/private/var/log/calls"))
        let configuration = try appliance.configuration()
        #expect(configuration.contains("app 1 installed") && configuration.contains("broken 1 half-configured: post-install configure failed"), "\(configuration)")

        // A remount runs nothing for configured layers and tries the failed post-install again.
        expectSuccess(try appliance.workspace.strata("umount", appliance.mountpoint))
        expectSuccess(try appliance.workspace.strata("mount", appliance.ldf, appliance.mountpoint, "--name", "appliance"))
        #expect(Array(try appliance.calls().dropFirst(first.count)) == ["broken post-install configure"])

        // An upgrade and a removal, live: the old version's pre-remove before the swap, its post-remove
        // after, the new one's pre-install and post-install with the old version; the removed layer's
        // pre-remove and post-remove with `remove`.
        try appliance.layer("runtime", "2", depends: "base")
        let before = try appliance.calls().count
        try appliance.write(["main/app 1", "main/runtime 2", "main/base 1"])
        expectSuccess(try appliance.update())
        let live = Array(try appliance.calls().dropFirst(before))
        #expect(live == ["runtime pre-remove upgrade 2", "broken pre-remove remove", "broken post-remove remove", "runtime post-remove upgrade 2",
                         "runtime pre-install upgrade 1", "runtime post-install configure 1"], "\(live)")
        #expect(try String(contentsOfFile: appliance.mountpoint + "/usr/share/runtime/version", encoding: .utf8) == "runtime 2\n")
        let after = try appliance.configuration()
        #expect(after.contains("runtime 2 installed") && !after.contains("broken"), "\(after)")
    }

    /// Fleet status names an appliance's layers whose scripts failed.
    @Test func fleetStatusShowsLayersNotConfigured() throws {
        let appliance = try Appliance("cfg-fleet")
        try appliance.layer("broken", "1", failing: ["post-install"])
        try appliance.write(["main/broken 1"])
        expectSuccess(try appliance.workspace.strata("template", "create", "tpl", appliance.ldf))
        expectSuccess(try appliance.workspace.strata("provision", "a1", "--template", "tpl"))
        expectSuccess(try appliance.workspace.strata("mount", appliance.workspace.home + "/appliances/a1.ldf", appliance.mountpoint, "--name", "a1"))
        defer { _ = try? appliance.workspace.strata("umount", appliance.mountpoint) }
        let status = expectSuccess(try appliance.workspace.strata("fleet", "status")).stdout
        #expect(status.contains("a1\ttpl\tcurrent") && status.hasSuffix("not configured: broken half-configured\n"), "\(status)")
    }

    @Test func theSandboxKeepsScriptsInsideTheVLFS() throws {
        let appliance = try Appliance("cfg")
        try appliance.write([])
        expectSuccess(try appliance.workspace.strata("mount", appliance.ldf, appliance.mountpoint, "--name", "appliance"))
        defer { _ = try? appliance.workspace.strata("umount", appliance.mountpoint) }
        let scripts = appliance.workspace.scratch.path + "/scripts"
        try makeDirectories(scripts)
        let probe = try execute(strataExecutable, ["internal", "sandbox", "--root", appliance.mountpoint, "--scripts", scripts, "--", "/bin/sh", "-c",
            "echo pid $$; cat /proc/net/dev | busybox wc -l; busybox ls /dev | busybox tr '\\n' ' '; echo; busybox grep CapEff /proc/self/status; echo x > /proc/sys/kernel/hostname && echo proc-writable; "
                + "busybox cut -d' ' -f5 /proc/self/mountinfo | busybox sed 's/^/mounted: /'"])
        let lines = probe.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "pid 1", "the script is PID 1 of its own namespace: \(probe.stdout) \(probe.stderr)")
        #expect(lines.dropFirst().first?.trimmingCharacters(in: .whitespaces) == "3", "only a loopback interface: \(probe.stdout) \(probe.stderr)")
        #expect(lines.count > 2 && !lines[2].contains("vda") && !lines[2].contains("loop") && lines[2].contains("null"), "only harmless devices: \(probe.stdout)")
        // CAP_SYS_ADMIN (bit 21) and CAP_SYS_CHROOT (bit 18) are gone.
        let effective = lines.first { $0.hasPrefix("CapEff:") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        #expect(effective.map { $0 & (1 << 21) == 0 && $0 & (1 << 18) == 0 } == true, "\(probe.stdout)")
        #expect(!probe.stdout.contains("proc-writable"))
        // The VLFS is the root and the host's mounts are not there: a copy of them would keep every other
        // VLFS and disk of the host mounted while the script runs.
        let mounted = Set(lines.filter { $0.hasPrefix("mounted: ") }.map { String($0.dropFirst(9)) })
        #expect(mounted == ["/", "/proc", "/sys", "/dev", "/dev/pts", "/run", "/run/strata"], "\(probe.stdout) \(probe.stderr)")
    }
}
