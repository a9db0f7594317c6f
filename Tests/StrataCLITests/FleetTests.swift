import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A workspace for templates and appliances: layers made from file lists, VLFSs mounted under the
/// scratch directory and all unmounted at the end.
final class FleetWorkspace: Sendable {
    let workspace: Workspace
    private let mounted = Mutex<[String]>([])

    init(_ label: String, layers: [(name: String, version: String, files: [String: String])]) throws {
        workspace = try Workspace(label)
        for layer in layers { try importLayer(layer.name, layer.version, layer.files) }
    }

    deinit {
        for mountpoint in mounted.withLock({ $0 }).reversed() where MountTable.isMounted(mountpoint, type: "fuse.strata") {
            if (try? workspace.strata("umount", mountpoint))?.status != 0 { umount2(mountpoint, Int32(MNT_DETACH)) }
        }
    }

    var home: String { workspace.home }

    func importLayer(_ name: String, _ version: String, _ files: [String: String]) throws {
        let tree = "trees/\(name)_\(version)"
        try makeDirectories(workspace.scratch.path + "/" + tree)
        for (path, contents) in files { try workspace.scratch.write("\(tree)/\(path)", contents) }
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/" + tree, "--name", name, "--version", version))
    }

    /// Writes an LDF into the scratch directory and returns its path.
    func ldf(_ name: String, _ lines: [String]) throws -> String {
        let path = workspace.scratch.path + "/\(name).ldf"
        try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: path)
        return path
    }

    /// A template made of `lines`, configured through its mount by `configure` (given the mountpoint),
    /// promoted into `main` and unmounted.
    func template(_ name: String, _ lines: [String], configure: (String) throws -> Void) throws {
        expectSuccess(try workspace.strata("template", "create", name, try ldf("\(name)-source", lines)))
        let mountpoint = try mount(template: name)
        try configure(mountpoint)
        expectSuccess(try workspace.strata("template", "promote", name, "--repo", "main"))
        try unmount(mountpoint)
    }

    func mount(template name: String) throws -> String {
        let mountpoint = try newMountpoint("template-\(name)")
        expectSuccess(try workspace.strata("template", "mount", name, mountpoint))
        return mountpoint
    }

    func mount(_ ldf: String, name: String) throws -> String {
        let mountpoint = try newMountpoint(name)
        expectSuccess(try workspace.strata("mount", ldf, mountpoint, "--name", name))
        return mountpoint
    }

    func mount(appliance name: String) throws -> String { try mount(home + "/appliances/\(name).ldf", name: name) }

    func unmount(_ mountpoint: String) throws { expectSuccess(try workspace.strata("umount", mountpoint)) }

    private func newMountpoint(_ name: String) throws -> String {
        let mountpoint = workspace.scratch.path + "/mnt-\(name)-\(mounted.withLock { $0.count })"
        try makeDirectories(mountpoint)
        mounted.withLock { $0.append(mountpoint) }
        return mountpoint
    }

    /// What the daemon of a VLFS composed, top to bottom.
    func composed(_ name: String) throws -> [String] {
        try String(contentsOfFile: home + "/vlfs/\(name)/composed", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func fleetStatus() throws -> [[String: Any]] {
        let result = expectSuccess(try workspace.strata("fleet", "status", "--json"))
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    }
}

func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func mode(_ path: String) -> mode_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
}

/// The layer a VLFS says provides a path (`user.strata.layer`).
func providingLayer(_ path: String) -> String? {
    try? shell("getfattr --only-values -n user.strata.layer '\(path)' 2>/dev/null")
}

/// Polls until `condition` holds, for at most `seconds`.
func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}

@Suite(.serialized) struct TemplateTests {
    static let layers = [("base", "1", ["etc/os-release": "strata\n", "etc/motd": "hello\n", "usr/share/doc/README": "read me\n"]),
                         ("tool", "1", ["usr/bin/tool": "one\n"]),
                         ("tool", "2", ["usr/bin/tool": "two\n"])]

    @Test func aTemplateConfiguredThroughItsMountBecomesAConfigurationLayer() throws {
        let fleet = try FleetWorkspace("promote", layers: Self.layers)
        expectSuccess(try fleet.workspace.strata("template", "create", "web", try fleet.ldf("web", ["main/base 1", "main/tool 1"])))
        let template = try fleet.mount(template: "web")
        try "listen 80\n".write(toFile: template + "/etc/web.conf", atomically: false, encoding: .utf8)
        try FileManager.default.removeItem(atPath: template + "/etc/motd")
        #expect(chmod(template + "/usr/share/doc/README", 0o600) == 0)

        let promoted = expectSuccess(try fleet.workspace.strata("template", "promote", "web", "--repo", "main"))
        #expect(promoted.stdout.hasPrefix("web-config 1 sha256:"))
        let shown = expectSuccess(try fleet.workspace.strata("layer", "show", "main", "web-config=1")).stdout
        #expect(shown.contains("Layer-Type: config"))
        #expect(read(fleet.home + "/templates/web.ldf") == "main/base 1\nmain/tool 1\n=main/web-config 1\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.home + "/vlfs/web/private") == [])
        #expect(try FileManager.default.contentsOfDirectory(atPath: fleet.home + "/vlfs/web/whiteouts") == [])

        func expectConfigured(_ mountpoint: String, version: Int, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(read(mountpoint + "/etc/web.conf") == "listen 80\n", sourceLocation: sourceLocation)
            #expect(providingLayer(mountpoint + "/etc/web.conf") == "web-config \(version)", sourceLocation: sourceLocation)
            #expect(!exists(mountpoint + "/etc/motd"), sourceLocation: sourceLocation)
            let listed = (try? FileManager.default.contentsOfDirectory(atPath: mountpoint + "/etc")) ?? []
            #expect(listed.contains("web.conf") && listed.contains("os-release") && !listed.contains("motd"), "\(listed)", sourceLocation: sourceLocation)
            #expect(mode(mountpoint + "/usr/share/doc/README") == 0o600, sourceLocation: sourceLocation)
            #expect(read(mountpoint + "/usr/share/doc/README") == "read me\n", sourceLocation: sourceLocation)
        }
        expectConfigured(template, version: 1)
        try fleet.unmount(template)
        let remounted = try fleet.mount(template: "web")
        expectConfigured(remounted, version: 1)

        // A second promotion carries the first configuration on, and replaces its layer in the LDF.
        try "more\n".write(toFile: remounted + "/etc/extra.conf", atomically: false, encoding: .utf8)
        expectSuccess(try fleet.workspace.strata("template", "promote", "web", "--repo", "main"))
        #expect(read(fleet.home + "/templates/web.ldf") == "main/base 1\nmain/tool 1\n=main/web-config 2\n")
        #expect(eventually { providingLayer(remounted + "/etc/extra.conf") == "web-config 2" })
        #expect(read(remounted + "/etc/extra.conf") == "more\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: remounted + "/etc").sorted() == ["extra.conf", "os-release", "web.conf"])
        expectConfigured(remounted, version: 2)
    }

    @Test func configurationLayersStackTheIncludingLDFsOwnAboveItsTemplatesInIncludeOrder() throws {
        let fleet = try FleetWorkspace("stacking", layers: Self.layers)
        try fleet.template("sql", ["main/base 1"]) { mountpoint in
            try "sql\n".write(toFile: mountpoint + "/etc/role", atomically: false, encoding: .utf8)
            try "sql\n".write(toFile: mountpoint + "/etc/sql.conf", atomically: false, encoding: .utf8)
        }
        try fleet.template("web", ["main/base 1", "main/tool 1"]) { mountpoint in
            try "web\n".write(toFile: mountpoint + "/etc/role", atomically: false, encoding: .utf8)
            try "web\n".write(toFile: mountpoint + "/etc/web.conf", atomically: false, encoding: .utf8)
            try FileManager.default.removeItem(atPath: mountpoint + "/etc/motd")
        }
        try fleet.template("both", ["@sql", "@web"]) { mountpoint in
            #expect(read(mountpoint + "/etc/role") == "sql\n", "of two templates, the one included first is on top")
            try "both\n".write(toFile: mountpoint + "/etc/both.conf", atomically: false, encoding: .utf8)
        }
        let both = try fleet.mount(template: "both")
        #expect(try fleet.composed("both") == ["main/both-config 1", "main/sql-config 1", "main/web-config 1", "main/base 1", "main/tool 1"])
        #expect(read(both + "/etc/role") == "sql\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: both + "/etc").sorted() == ["both.conf", "os-release", "role", "sql.conf", "web.conf"])

        // Its own configuration is above the templates'; the other include order puts web's above sql's.
        let reversed = try fleet.mount(try fleet.ldf("reversed", ["@web", "@sql", "=main/both-config 1"]), name: "reversed")
        #expect(try fleet.composed("reversed") == ["main/both-config 1", "main/web-config 1", "main/sql-config 1", "main/base 1", "main/tool 1"])
        #expect(read(reversed + "/etc/role") == "web\n")
        #expect(!exists(reversed + "/etc/motd"))
    }
}

@Suite(.serialized) struct FleetTests {
    @Test func provisionedAppliancesFollowTheirTemplateMountedOrNot() throws {
        let fleet = try FleetWorkspace("fleet", layers: [TemplateTests.layers[0], TemplateTests.layers[1]])
        try fleet.template("web", ["main/base 1", "main/tool 1"]) { mountpoint in
            try "listen 80\n".write(toFile: mountpoint + "/etc/web.conf", atomically: false, encoding: .utf8)
            try FileManager.default.removeItem(atPath: mountpoint + "/etc/motd")
        }
        let names = (1...10).map { String(format: "app%02d", $0) }
        #expect(expectSuccess(try fleet.workspace.strata(["provision"] + names + ["--template", "web"])).stdout == names.joined(separator: "\n") + "\n")
        #expect(read(fleet.home + "/appliances/app01.ldf") == "@web\n")
        let mounted = try ["app01", "app02"].map { try fleet.mount(appliance: $0) }
        for mountpoint in mounted {
            #expect(read(mountpoint + "/etc/web.conf") == "listen 80\n")
            #expect(!exists(mountpoint + "/etc/motd"))
            #expect(read(mountpoint + "/usr/bin/tool") == "one\n")
        }

        let listed = expectSuccess(try fleet.workspace.strata("appliance", "list", "--json")).stdout
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]])
        #expect(rows.map { $0["name"] as? String } == names)
        #expect(rows.allSatisfy { $0["template"] as? String == "web" })
        #expect(rows.filter { $0["mounted"] as? Bool == true }.map { $0["name"] as? String } == ["app01", "app02"])
        #expect(rows.allSatisfy { ($0["layers"] as? [String])?.sorted() == ["main/base 1", "main/tool 1", "main/web-config 1"] })

        // The daemons are held still while the template changes: they are pending until they take it.
        let daemons = try ["app01", "app02"].map { name in
            try #require(pid_t(read(fleet.home + "/vlfs/\(name)/daemon.pid")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        }
        for pid in daemons { kill(pid, SIGSTOP) }
        try fleet.importLayer("tool", "2", ["usr/bin/tool": "two\n"])
        let upgraded = expectSuccess(try fleet.workspace.strata("ldf", "upgrade", fleet.home + "/templates/web.ldf"))
        #expect(upgraded.stdout.contains("main/tool 1 -> 2"))
        let pending = try fleet.fleetStatus()
        for pid in daemons { kill(pid, SIGCONT) }
        for status in pending {
            let name = try #require(status["name"] as? String)
            #expect(status["composes"] as? [String] == ["main/base 1", "main/tool 2", "main/web-config 1"], "\(name)")
            if name == "app01" || name == "app02" {
                #expect(status["mounted"] as? Bool == true)
                #expect(status["pending"] as? [String] == ["+ main/tool 2", "- main/tool 1"], "\(name)")
            } else {
                #expect(status["mounted"] as? Bool == false)
                #expect(status["pending"] as? [String] == [], "\(name)")
            }
        }

        for mountpoint in mounted {
            #expect(eventually { read(mountpoint + "/usr/bin/tool") == "two\n" }, "the mounted appliance takes the template's upgrade live")
            #expect(read(mountpoint + "/etc/web.conf") == "listen 80\n")
        }
        #expect(try eventually { try fleet.fleetStatus().allSatisfy { ($0["pending"] as? [String]) == [] } })
        let status = expectSuccess(try fleet.workspace.strata("fleet", "status")).stdout.split(separator: "\n")
        #expect(status.first == "app01\tweb\tcurrent\tmain/base 1, main/tool 2, main/web-config 1")
        #expect(status.last == "app10\tweb\tnot-mounted\tmain/base 1, main/tool 2, main/web-config 1")

        let later = try fleet.mount(appliance: "app03")
        #expect(read(later + "/usr/bin/tool") == "two\n")
        #expect(read(later + "/etc/web.conf") == "listen 80\n")
        #expect(!exists(later + "/etc/motd"))

        // A new configuration of the template reaches the mounted appliances live too.
        let template = try fleet.mount(template: "web")
        try "listen 8080\n".write(toFile: template + "/etc/web.conf", atomically: false, encoding: .utf8)
        expectSuccess(try fleet.workspace.strata("template", "promote", "web", "--repo", "main"))
        for mountpoint in mounted + [later] {
            #expect(eventually { read(mountpoint + "/etc/web.conf") == "listen 8080\n" })
            #expect(!exists(mountpoint + "/etc/motd"), "the second configuration layer carries the first one's deletion")
            #expect(read(mountpoint + "/usr/bin/tool") == "two\n")
        }
    }

    @Test func badFleetInputIsRefusedByName() throws {
        let fleet = try FleetWorkspace("bad-fleet", layers: [TemplateTests.layers[0]])
        func refused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let result = try fleet.workspace.strata(arguments)
            #expect(result.status != 0, "\(arguments) succeeded", sourceLocation: sourceLocation)
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)", sourceLocation: sourceLocation)
        }
        let broken = try fleet.ldf("broken", ["main/base 1", "not a layer line"])
        try refused(["template", "create", "web", broken], "broken.ldf:2")
        try refused(["template", "create", "Web", try fleet.ldf("web", ["main/base 1"])], "invalid template name 'Web'")
        expectSuccess(try fleet.workspace.strata("template", "create", "web", try fleet.ldf("web", ["main/base 1"])))
        try refused(["template", "create", "web", try fleet.ldf("web", ["main/base 1"])], "template 'web' exists already")
        try refused(["template", "promote", "nope", "--repo", "main"], "template 'nope' not found")
        try refused(["template", "promote", "web", "--repo", "elsewhere"], "--repo elsewhere")
        try refused(["provision", "a1", "--template", "nope"], "template 'nope' not found")
        try refused(["provision", "a1", "--template", "web", "--mac", "aa:bb:cc:dd:ee"], "--mac 'aa:bb:cc:dd:ee': not a MAC address")
        try refused(["provision", "a1", "a2", "--template", "web", "--mac", "aa:bb:cc:dd:ee:ff"], "--mac goes with a single appliance name")
        try refused(["provision", "a1", "a1", "--template", "web"], "appliance 'a1' is named twice")
        expectSuccess(try fleet.workspace.strata("provision", "a1", "--template", "web", "--mac", "AA-BB-CC-DD-EE-FF"))
        try refused(["provision", "a1", "--template", "web"], "appliance 'a1' exists already")
        try refused(["provision", "a2", "--template", "web", "--mac", "aa:bb:cc:dd:ee:ff"], "MAC aa:bb:cc:dd:ee:ff is bound to appliance 'a1' already")
        try refused(["provision", "web", "--template", "web"], "a VLFS named 'web' exists already")
        #expect(!exists(fleet.home + "/appliances/a2.ldf"), "a refused provisioning writes nothing")
        #expect(!exists(fleet.home + "/vlfs/a2"))
        let listed = expectSuccess(try fleet.workspace.strata("appliance", "list", "--mac", "aa:bb:cc:dd:ee:ff")).stdout
        #expect(listed.hasPrefix("a1\tweb\taa:bb:cc:dd:ee:ff\tnot mounted\tmain/base 1"))
    }
}
