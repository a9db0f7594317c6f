import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Peers of a mounted VLFS's control socket that the daemon must not trust or wait for.
@Suite(.serialized) struct ControlSocketTests {
    static let ldf = ["main/app 1", "main/base 1"]

    /// A VLFS whose private copy of etc/app.conf a `revert` would drop; its daemon waits 2 s for a request.
    static func mounted(_ label: String) throws -> MountedWorkspace {
        let vlfs = try MountedWorkspace(label, layers: MountTests.app, ldf: ldf, mountOptions: ["--control-timeout", "2"])
        try vlfs.write("etc/app.conf", "edited\n")
        return vlfs
    }

    /// Runs a Python client of the VLFS's control socket, as `user` if given, and returns what it
    /// prints. Its `connect()` gives a socket connected to the daemon, `reply(s)` the line the daemon
    /// answers ("" when it hangs up without a word; "no answer" after 30 s, rather than a hung test).
    static func client(of vlfs: MountedWorkspace, as user: Int? = nil, _ body: String) throws -> [String] {
        let script = """
            import socket, sys
            def connect():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(30)
                s.connect(sys.argv[1])
                return s
            def send(s, data):
                try:
                    s.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            def reply(s):
                data = b""
                try:
                    while not data.endswith(b"\\n"):
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except socket.timeout:
                    return "no answer"
                except ConnectionResetError:
                    pass
                return data.decode().rstrip("\\n")
            def still_open(s):
                s.setblocking(False)
                try:
                    return s.recv(1, socket.MSG_PEEK) != b""
                except BlockingIOError:
                    return True
                finally:
                    s.settimeout(30)

            """ + body
        let socketPath = vlfs.workspace.home + "/vlfs/\(vlfs.name)/control.sock"
        let python = ["/usr/bin/python3", "-c", script, socketPath]
        let run = try user.map { try execute("/usr/bin/setpriv", ["--reuid=\($0)", "--regid=\($0)", "--clear-groups"] + python) }
            ?? execute(python[0], Array(python.dropFirst()))
        #expect(run.status == 0, "\(run.stderr)")
        return run.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func aPeerThatIsNotRootIsRefusedAndNothingRuns() throws {
        let vlfs = try Self.mounted("ctl-user")
        // Let user 65534 reach the socket, as a careless chmod or a socket bound into a container
        // would: all that then stands between it and the daemon is the check of its credentials.
        let state = vlfs.workspace.home + "/vlfs/\(vlfs.name)"
        for directory in [vlfs.workspace.scratch.path, vlfs.workspace.home, vlfs.workspace.home + "/vlfs", state] { chmod(directory, 0o711) }
        chmod(state + "/control.sock", 0o666)
        let refused = try Self.client(of: vlfs, as: 65534, "s = connect(); send(s, b'revert etc/app.conf\\n'); print(reply(s))")
        #expect(refused == ["error: permission denied (root only)"])
        #expect(try vlfs.read("etc/app.conf") == "edited\n")
        #expect(try Self.client(of: vlfs, "s = connect(); send(s, b'status\\n'); print(reply(s))").first?.hasPrefix("ok ") == true)
    }

    @Test func silentAndPartialPeersDoNotHoldUpOthersAndAreDroppedUnheard() throws {
        let vlfs = try Self.mounted("ctl-silent")
        let lines = try Self.client(of: vlfs, """
            silent = connect()
            partial = connect(); send(partial, b"revert etc/app.conf")
            ended = connect(); send(ended, b"revert etc/app.conf"); ended.shutdown(socket.SHUT_WR)
            s = connect(); send(s, b"status\\n"); print(reply(s))
            print("silent peer still connected" if still_open(silent) else "silent peer dropped")
            print(reply(silent) or "silent peer dropped")
            print(reply(partial) or "partial peer dropped")
            print(reply(ended) or "ended peer dropped")
            """)
        #expect(lines.count == 5 && lines[0].hasPrefix("ok "), "status answered while a silent peer waits: \(lines)")
        #expect(Array(lines.dropFirst()) == ["silent peer still connected", "silent peer dropped", "partial peer dropped", "ended peer dropped"])
        #expect(try vlfs.read("etc/app.conf") == "edited\n", "no partial request was run")
    }

    @Test func aFloodOfPeersIsToldBusyAndServingResumes() throws {
        let vlfs = try Self.mounted("ctl-busy")
        let lines = try Self.client(of: vlfs, """
            held = [connect() for _ in range(16)]
            s = connect(); send(s, b"status\\n"); print(reply(s))
            print(all(reply(h) == "" for h in held))
            s = connect(); send(s, b"status\\n"); print(reply(s))
            """)
        #expect(lines.count == 3 && lines[0] == "error: busy" && lines[1] == "True" && lines[2].hasPrefix("ok "), "\(lines)")
    }

    @Test func anOverlongRequestIsRefused() throws {
        let vlfs = try Self.mounted("ctl-long")
        let lines = try Self.client(of: vlfs, """
            s = connect(); send(s, b"revert etc/" + b"a" * 70000 + b"\\n"); print(reply(s))
            s = connect(); send(s, b"revert " + b"a" * 70000); print(reply(s))
            """)
        #expect(lines == ["error: request too long", "error: request too long"])
        #expect(try vlfs.read("etc/app.conf") == "edited\n")
    }
}
