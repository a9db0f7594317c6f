import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A served repository reached through an HTTP proxy named the usual way (`http_proxy`): Debian's
/// tinyproxy on loopback, whose log must show every request the mirror made.
@Suite(.serialized) struct ProxyTests {
    @Test func aRepositoryIsMirroredThroughTheProxyTheEnvironmentNames() throws {
        let remote = try RemoteWorkspace(.nginx, label: "proxy", add: false)
        let port = 19_000 + Int(getpid() % 1000)
        let log = remote.workspace.scratch.path + "/tinyproxy.log", configuration = remote.workspace.scratch.path + "/tinyproxy.conf"
        try AtomicFile.write("""
            Port \(port)
            Listen 127.0.0.1
            Timeout 30
            LogFile "\(log)"
            LogLevel Connect
            MaxClients 16
            Allow 127.0.0.1
            DisableViaHeader Yes

            """, to: configuration)
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/tinyproxy")
        proxy.arguments = ["-d", "-c", configuration]
        proxy.standardOutput = FileHandle.nullDevice
        proxy.standardError = FileHandle.nullDevice
        try proxy.run()
        defer {
            kill(proxy.processIdentifier, SIGKILL)
            proxy.waitUntilExit()
        }
        for _ in 0..<50 where (try? shell("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", \(port)), 1)'")) == nil { usleep(100_000) }

        let environment = ["STRATA_HOME": remote.clientHome, "http_proxy": "http://127.0.0.1:\(port)", "no_proxy": ""]
        func strata(_ arguments: String...) throws -> Execution { try execute(strataExecutable, arguments, environment: environment) }
        expectSuccess(try strata("repo", "add", "remote", remote.server.url))
        try AtomicFile.write("remote/app\n", to: remote.ldf)
        expectSuccess(try strata("ldf", "resolve", remote.ldf, "--write"))
        expectSuccess(try strata("mount", remote.ldf, remote.mountpoint, "--name", "proxied"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        expectSuccess(try strata("umount", remote.mountpoint))
        let proxied = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(proxied.contains("GET \(remote.server.url)/index.sqlite") && proxied.contains("GET \(remote.server.url)/objects/sha256/"), "\(proxied)")

        // A proxy that is not there is an error naming the URL; `no_proxy` goes around it.
        kill(proxy.processIdentifier, SIGKILL)
        proxy.waitUntilExit()
        let refused = try execute(strataExecutable, ["repo", "add", "again", remote.server.url],
                                  environment: environment.merging(["STRATA_HOME": remote.clientHome + "-2"]) { $1 })
        #expect(refused.status != 0 && refused.stderr.contains(remote.server.url), "\(refused.stderr)")
        expectSuccess(try execute(strataExecutable, ["repo", "add", "again", remote.server.url],
                                  environment: environment.merging(["STRATA_HOME": remote.clientHome + "-2", "no_proxy": "127.0.0.1"]) { $1 }))
    }
}
