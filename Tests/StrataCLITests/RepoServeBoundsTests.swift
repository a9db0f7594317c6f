import Foundation
import Logging
import StrataServer
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection to 127.0.0.1 driven by hand, to be the clients curl will not be: slow, silent,
/// sending what a read-only server refuses, or not reading what it is sent.
final class RawConnection {
    private var fd: Int32

    /// - Parameter receiveBuffer: a small SO_RCVBUF keeps what the kernel takes for a client that does not read small.
    init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var wait = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        guard connectToLoopback(fd, port: port) else { throw SystemError("connect", "127.0.0.1:\(port)") }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Sends all of `text`; false when the server closed the connection first.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    private var pending: [UInt8] = []
    private var ended = false

    /// Reads what arrives within `seconds`, until `enough` says so or the server ends the connection.
    private func receive(for seconds: Double, until enough: ([UInt8]) -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while !ended, !enough(pending), Date() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                pending += chunk[..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                ended = true
            }
        }
    }

    /// The next response (head and a body of its Content-Length) if it arrives within `seconds`.
    func response(within seconds: Double) -> String? {
        func length(_ bytes: [UInt8]) -> Int? {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { return nil }
            let head = text[..<end.lowerBound]
            let declared = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = head.utf8.count + 4 + (head.hasPrefix("HEAD") ? 0 : declared)
            return bytes.count >= total ? total : nil
        }
        receive(for: seconds) { length($0) != nil }
        guard let total = length(pending) else { return nil }
        defer { pending.removeFirst(total) }
        return String(decoding: pending[..<total], as: UTF8.self)
    }

    /// Whether the server ends the connection within `seconds`, and how many bytes came before.
    func closedByServer(within seconds: Double) -> (closed: Bool, bytes: Int) {
        receive(for: seconds) { _ in false }
        return (ended, pending.count)
    }
}

/// Expects a 200 answer.
func expectServed(_ answer: String?, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(answer?.hasPrefix("HTTP/1.1 200 OK") == true, "\(comment.map { "\($0): " } ?? "")\(answer ?? "no answer")", sourceLocation: sourceLocation)
}

/// `strata repo serve` holds to its bounds: connections, head size, no bodies, timeouts; it does not
/// follow symbolic links or open what is not a regular file; concurrent range requests each get their part.
@Suite(.serialized) struct RepoServeBoundsTests {
    static let get = "GET /strata-repository HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    /// A repository and its server, which go together (the workspace's directory is removed when it goes).
    final class Served {
        let workspace: Workspace
        let server: RepositoryServer

        init(_ label: String, _ options: [String]) throws {
            workspace = try Workspace(label)
            server = try RepositoryServer(.strata, serving: workspace.repository, scratch: workspace.scratch.path, options: options)
        }
    }

    @Test func connectionsPastTheLimitWaitUntilOneCloses() throws {
        let served = try Served("serve-connections", ["--connections", "2"]), server = served.server
        let first = try RawConnection(port: server.port), second = try RawConnection(port: server.port)
        for connection in [first, second] {
            connection.send(Self.get)
            expectServed(connection.response(within: 5))
        }
        let third = try RawConnection(port: server.port)
        third.send(Self.get)
        #expect(third.response(within: 2) == nil, "a third connection is not served while two are open")
        first.close()
        expectServed(third.response(within: 5), "it is once one closes")
        second.send(Self.get)
        expectServed(second.response(within: 5), "the others carry on")
    }

    @Test func anOversizedRequestHeadIsRefusedAndItsConnectionClosed() throws {
        let served = try Served("serve-head", []), server = served.server
        let padded = { (bytes: Int) in "GET /strata-repository HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: \(String(repeating: "a", count: bytes))\r\n\r\n" }
        let fits = try RawConnection(port: server.port)
        fits.send(padded(8 * 1024))
        expectServed(fits.response(within: 5), "a head within 16 KiB is served")

        let long = try RawConnection(port: server.port)
        long.send(padded(20 * 1024))
        #expect(long.response(within: 5)?.hasPrefix("HTTP/1.1 400 Bad Request") == true)
        #expect(long.closedByServer(within: 5).closed)

        let many = try RawConnection(port: server.port)
        many.send("GET /strata-repository HTTP/1.1\r\n" + (0..<150).map { "X-Field-\($0): v\r\n" }.joined() + "\r\n")
        #expect(many.response(within: 5)?.hasPrefix("HTTP/1.1 400 Bad Request") == true, "more than 100 fields")
        #expect(many.closedByServer(within: 5).closed)
    }

    @Test func aRequestBodyIsRefusedWithoutBeingReadAndItsConnectionClosed() throws {
        let served = try Served("serve-bodies", []), server = served.server
        let refusals = [
            ("POST /strata-repository HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "405 Method Not Allowed"),
            ("GET /strata-repository HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "413 Content Too Large"),
            ("GET /strata-repository HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "413 Content Too Large"),
            // Refused at its first bytes, not after the gigabyte announced.
            ("GET /strata-repository HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nstart", "413 Content Too Large"),
        ]
        for (request, status) in refusals {
            let connection = try RawConnection(port: server.port)
            connection.send(request)
            let answer = connection.response(within: 5)
            #expect(answer?.hasPrefix("HTTP/1.1 \(status.prefix(3))") == true && answer?.hasSuffix(status + "\n") == true, "\(answer ?? "no answer")")
            #expect(connection.closedByServer(within: 5).closed)
        }
        // A refusal behind a pipelined request waits for its answer.
        let pipelined = try RawConnection(port: server.port)
        pipelined.send(Self.get + "DELETE /strata-repository HTTP/1.1\r\nHost: x\r\n\r\n")
        expectServed(pipelined.response(within: 5))
        let refused = pipelined.response(within: 5)
        #expect(refused?.hasPrefix("HTTP/1.1 405") == true && refused?.contains("Allow: GET, HEAD\r\n") == true, "\(refused ?? "no answer")")
        #expect(pipelined.closedByServer(within: 5).closed)
        #expect(server.requests().contains { $0.hasSuffix("POST /strata-repository 405") })
        #expect(server.requests().filter { $0.hasSuffix("GET /strata-repository 413") }.count == 3)
    }

    @Test func slowIdleAndNonReadingClientsLoseTheirConnections() throws {
        let served = try Served("serve-slow", ["--timeout", "2"]), server = served.server, workspace = served.workspace
        // A head sent a byte every 200 ms never completes: the connection goes after about 2 s.
        let slow = try RawConnection(port: server.port)
        slow.send("GET /strata-repository HTTP/1.1\r\n")
        let started = Date()
        var sent = 0
        while sent < 60, slow.send("X"), !slow.closedByServer(within: 0.2).closed { sent += 1 }
        #expect(sent < 60 && Date().timeIntervalSince(started) < 8, "closed after \(Date().timeIntervalSince(started)) s, \(sent) bytes")

        let idle = try RawConnection(port: server.port)
        idle.send(Self.get)
        expectServed(idle.response(within: 5))
        #expect(idle.closedByServer(within: 6).closed, "a kept-alive connection left idle is closed")

        // A client that asks for 64 MiB and reads nothing holds the response only until the timeout.
        let size = 64 << 20
        _ = try shell("truncate -s \(size) \(workspace.repository)/big")
        let stalled = try RawConnection(port: server.port, receiveBuffer: 4096)
        stalled.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        sleep(6)
        let outcome = stalled.closedByServer(within: 10)
        #expect(outcome.closed && outcome.bytes < size, "\(outcome.bytes) of \(size) bytes before the server gave up")

        let next = try RawConnection(port: server.port)
        next.send(Self.get)
        expectServed(next.response(within: 5), "the server serves on")
    }

    @Test func symbolicLinksDevicesAndFIFOsAreNotServed() throws {
        let served = try Served("serve-links", []), server = served.server, workspace = served.workspace
        let root = workspace.repository
        #expect(symlink("/etc/passwd", root + "/passwd") == 0)
        #expect(symlink("/etc", root + "/etc") == 0)
        #expect(symlink("strata-repository", root + "/inside") == 0)
        #expect(mkfifo(root + "/fifo", 0o644) == 0)
        try makeDirectories(root + "/sub")
        #expect(symlink("..", root + "/sub/up") == 0)
        for path in ["passwd", "etc/passwd", "inside", "fifo", "sub", "sub/up/strata-repository", "sub/up/sub/up/strata-repository"] {
            let answer = try execute("/usr/bin/curl", ["-s", "-o", "/dev/null", "--max-time", "5", "-w", "%{http_code}", "\(server.url)\(path)"])
            #expect(answer.stdout == "404", "\(path): \(answer.stdout)")
        }
        #expect(try execute("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(server.url)strata-repository"]).stdout == "200")
    }

    @Test func concurrentRangeRequestsEachGetTheirPart() throws {
        let served = try Served("serve-ranges", []), server = served.server, workspace = served.workspace
        let size = 8 << 20
        _ = try shell("head -c \(size) /dev/urandom > \(workspace.repository)/random")
        let data = try Data(contentsOf: URL(fileURLWithPath: workspace.repository + "/random"))
        let output = workspace.scratch.path + "/parts"
        try makeDirectories(output)
        let parts = (0..<32).map { i in (first: i * 250_007, last: i * 250_007 + 300_000 + i * 1013) }
        // `next` ends each transfer's options: a range is not per URL otherwise.
        let config = parts.enumerated().map { i, part in
            "url = \"\(server.url)random\"\nrange = \(part.first)-\(part.last)\noutput = \"\(output)/\(i)\"\n"
        }.joined(separator: "next\n")
        try AtomicFile.write(config, to: workspace.scratch.path + "/curl.config")
        expectSuccess(try execute("/usr/bin/curl", ["-s", "-f", "--parallel", "--parallel-max", "16", "-K", workspace.scratch.path + "/curl.config"]))
        for (i, part) in parts.enumerated() {
            let got = try Data(contentsOf: URL(fileURLWithPath: "\(output)/\(i)"))
            // Compared outside #expect, which would diff two large collections byte by byte on a mismatch.
            let same = got == data[part.first...min(part.last, size - 1)]
            #expect(same, "part \(i): \(got.count) bytes for \(part.first)-\(part.last)")
        }
        #expect(server.requests().filter { $0.hasSuffix("GET /random 206") }.count == parts.count)
    }
}

/// The server module as `strata boot serve` uses it: repositories under prefixes, single files and
/// dynamic routes on one port, started and stopped in the test's process.
@Suite struct ServerModuleTests {
    struct Refused: Error {}

    @Test func directoriesUnderPrefixesFilesAndRoutesAreServedOnOnePort() throws {
        let scratch = try TemporaryDirectory("server-module")
        try scratch.write("a/objects/one", "in a\n")
        try scratch.write("b/objects/one", "in b\n")
        try scratch.write("kernel", "kernel image\n")
        var server = try HTTPServer(listen: "127.0.0.1:0", logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        try server.serveDirectory(scratch.path + "/a", at: "/repos/a/")
        try server.serveDirectory(scratch.path + "/b", at: "/repos/b")
        try server.serveFile(scratch.path + "/kernel", at: "/boot/kernel", contentType: "application/x-kernel")
        try server.get("/describe") { request in
            request.accepts("application/json")
                ? ServedResponse(contentType: "application/json", text: "{\"query\":\"\(request.query)\"}", headers: [("Vary", "Accept")])
                : ServedResponse(status: 406, contentType: "text/plain", text: "json only\n")
        }
        try server.get("/fails") { _ in throw Refused() }
        #expect(throws: ServerError.self) { try server.serveDirectory(scratch.path + "/b", at: "/repos/a/") }
        #expect(throws: ServerError.self) { try server.get("describe") { _ in ServedResponse(contentType: "text/plain", text: "") } }
        #expect(throws: ServerError.self) { try server.serveFile(scratch.path + "/a", at: "/dir", contentType: "text/plain") }
        #expect(throws: ServerError.self) { try server.serveDirectory(scratch.path + "/none", at: "/none/") }
        #expect(throws: ServerError.self) { try HTTPServer(listen: "127.0.0.1", logger: Logger(label: "test")) }

        let running = try server.start()
        defer { try? running.stop() }
        let base = "http://127.0.0.1:\(running.port)"
        func curl(_ arguments: String...) throws -> String {
            try execute("/usr/bin/curl", ["-s", "-w", " %{http_code} %{content_type}"] + arguments).stdout
        }
        #expect(try curl("\(base)/repos/a/objects/one") == "in a\n 200 application/octet-stream")
        #expect(try curl("\(base)/repos/b/objects/one") == "in b\n 200 application/octet-stream")
        #expect(try curl("-r", "3-", "\(base)/boot/kernel") == "nel image\n 206 application/x-kernel")
        #expect(try curl("-H", "Accept: text/html;q=0.9, application/*", "\(base)/describe?mac=01-02") == "{\"query\":\"mac=01-02\"} 200 application/json")
        #expect(try curl("-H", "Accept: text/html, application/json;q=0", "\(base)/describe") == "json only\n 406 text/plain")
        let head = try execute("/usr/bin/curl", ["-s", "-I", "\(base)/describe"]).stdout
        #expect(head.hasPrefix("HTTP/1.1 200") && head.contains("Content-Length: 12\r\n") && head.contains("Vary: Accept\r\n"), "\(head)")
        #expect(try curl("\(base)/fails").hasSuffix(" 500 text/plain"))
        #expect(try curl("\(base)/repos/c/objects/one").hasSuffix(" 404 text/plain"))
        #expect(try curl("\(base)/repos/a").hasSuffix(" 404 text/plain"), "no listings")
        #expect(try curl("--path-as-is", "\(base)/repos/a/../b/objects/one").hasSuffix(" 400 text/plain"))

        try running.stop()
        #expect(try execute("/usr/bin/curl", ["-s", "\(base)/boot/kernel"]).status == 7, "nothing listens once stopped")
    }
}
