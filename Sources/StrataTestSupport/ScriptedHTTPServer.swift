import Foundation
import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP server on 127.0.0.1 whose every answer the test writes, byte for byte: to play a server
/// that misbehaves (lies about lengths, floods headers, stalls, hangs up) against a real client over
/// a real socket. One thread per connection; stopped, with every connection, when it goes away.
public final class ScriptedHTTPServer: Sendable {
    public let url: String
    /// What the serving threads share; they hold it, not the server, so the server can go away.
    private let core: Core

    public struct Request: Sendable {
        public let method: String
        /// The request target, without the leading slash.
        public let path: String
        public let headers: [String: String]
    }

    public struct Answer: Sendable {
        public var bytes: [UInt8]
        public var then: After

        public enum After: Sendable {
            /// Wait for the next request on the connection.
            case keepAlive
            case close
            /// Say nothing more, and keep the connection open until the client gives up.
            case stall
        }

        public init(_ bytes: [UInt8], then: After) {
            self.bytes = bytes
            self.then = then
        }

        public init(_ text: String, then: After) { self.init(Array(text.utf8), then: then) }

        /// A well-formed answer: the file at `path`, or 404.
        public static func file(_ path: String) -> Answer {
            guard let body = FileManager.default.contents(atPath: path) else {
                return Answer("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", then: .keepAlive)
            }
            return Answer(Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body, then: .keepAlive)
        }
    }

    public convenience init(answer: @escaping @Sendable (Request) -> Answer) throws {
        try self.init(backlog: 16, answer: answer)
    }

    /// A listener that never accepts: the first connection fills its queue, and connecting after
    /// that waits (the kernel drops the SYNs), as with a host that has stopped answering.
    public static func neverAccepting() throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer(backlog: 0, answer: nil)
    }

    private init(backlog: Int32, answer: (@Sendable (Request) -> Answer)?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 && listen(listener, backlog) == 0
            }
        }
        guard listening else {
            close(listener)
            throw SystemError("listen", "127.0.0.1:0")
        }
        url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"
        core = Core(listener: listener, answer: answer)
        if answer != nil { Thread { [core] in core.acceptConnections() }.start() }
    }

    deinit { core.stop() }
}

private final class Core: Sendable {
    let listener: Int32
    /// nil for a listener that never accepts.
    let answer: (@Sendable (ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Answer)?
    /// Open connections, so that `stop` can end the threads waiting on them.
    let connections = Mutex<Set<Int32>>([])

    init(listener: Int32, answer: (@Sendable (ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Answer)?) {
        self.listener = listener
        self.answer = answer
    }

    /// shutdown, not close: it wakes the threads blocked in accept and recv, which then close the
    /// sockets (a connection is closed under the lock, so no number shut down here is reused yet).
    func stop() {
        guard answer != nil else {
            close(listener)
            return
        }
        shutdown(listener, Int32(SHUT_RDWR))
        connections.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    func acceptConnections() {
        guard let answer else { return }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                // EINVAL: `stop` shut the listener down.
                if errno == EINVAL { break }
                continue
            }
            connections.withLock { _ = $0.insert(fd) }
            Thread { [self] in
                serve(fd, answer: answer)
                connections.withLock {
                    $0.remove(fd)
                    close(fd)
                }
            }.start()
        }
        close(listener)
    }

    private func serve(_ fd: Int32, answer: (ScriptedHTTPServer.Request) -> ScriptedHTTPServer.Answer) {
        var pending: [UInt8] = []
        while let request = readRequest(fd, pending: &pending) {
            let reply = answer(request)
            var offset = 0
            while offset < reply.bytes.count {
                let n = reply.bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                offset += n
            }
            switch reply.then {
            case .keepAlive: continue
            case .close: return
            case .stall:
                var byte: UInt8 = 0
                while recv(fd, &byte, 1, 0) > 0 {}
                return
            }
        }
    }

    /// The next request head on the connection; nil once the client has gone.
    private func readRequest(_ fd: Int32, pending: inout [UInt8]) -> ScriptedHTTPServer.Request? {
        let end = Array("\r\n\r\n".utf8)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !pending.contains(end) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            pending += chunk[..<n]
        }
        let headEnd = pending.firstRange(of: end)!
        let lines = String(decoding: pending[..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        pending.removeSubrange(..<headEnd.upperBound)
        let requestLine = lines[0].split(separator: " ")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return ScriptedHTTPServer.Request(method: String(requestLine.first ?? ""), path: String(requestLine.dropFirst().first?.dropFirst() ?? ""), headers: headers)
    }
}
