import Foundation

/// A minimal HTTP/1.1 client for one server: one connection, kept alive between requests and
/// reopened when the server has closed it. Enough for static files (GET, HEAD, Range, conditional
/// requests) without pulling a networking stack into the tool. Not for concurrent use: run one
/// client per thread.
public final class HTTPClient {
    public let location: HTTPLocation
    let timeout: Int
    private var socket: Socket?
    private var body = Body.none

    public struct Response: Sendable {
        public let status: Int
        public let reason: String
        public let headers: HTTPHeaders

        /// The body's length when the server states it.
        public var contentLength: Int64? { headers["Content-Length"].flatMap { Int64($0) } }
    }

    /// How the rest of the current response's body is delimited.
    private enum Body {
        case none
        case length(Int64)
        case chunked(remainingInChunk: Int64)
        case untilClose
    }

    /// - Parameter timeout: seconds any one connect, read or write may wait.
    public init(location: HTTPLocation, timeout: Int = 30) {
        self.location = location
        self.timeout = timeout
    }

    /// Sends a request for a file of the repository and reads the response head; the body follows
    /// through `readBody`. A kept-alive connection the server closed meanwhile is reopened and the
    /// request sent again (GET and HEAD are idempotent).
    public func send(_ method: String = "GET", _ relative: String, headers: [(name: String, value: String)] = []) throws -> Response {
        if case .none = body, let open = socket, !open.isReadable {
            if let response = try? exchange(method, relative, headers: headers, on: open) { return response }
        }
        socket = nil
        let fresh = try Socket.connect(host: location.host, port: location.port, timeout: timeout)
        socket = fresh
        do {
            return try exchange(method, relative, headers: headers, on: fresh)
        } catch {
            socket = nil
            throw error
        }
    }

    private func exchange(_ method: String, _ relative: String, headers: [(name: String, value: String)], on socket: Socket) throws -> Response {
        let request = HTTPHeaders([("Host", location.authority), ("User-Agent", "strata")] + headers)
        try socket.write("\(method) \(Self.percentEncoded(location.target(relative))) HTTP/1.1\r\n\(request.serialized())\r\n")
        guard let statusLine = try socket.readLine() else {
            throw NetworkError("\(location.url(relative)): the server closed the connection without answering")
        }
        let parts = statusLine.split(separator: " ", maxSplits: 2).map(String.init)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw NetworkError("\(location.url(relative)): not an HTTP response: '\(statusLine.prefix(80))'")
        }
        let response = Response(status: status, reason: parts.count > 2 ? parts[2] : "", headers: try HTTPHeaders.read(from: socket))
        if method == "HEAD" || status == 204 || status == 304 || status < 200 {
            body = .none
        } else if response.headers["Transfer-Encoding"]?.lowercased().contains("chunked") == true {
            body = .chunked(remainingInChunk: 0)
        } else if let length = response.contentLength {
            body = .length(length)
        } else {
            body = .untilClose
        }
        return response
    }

    /// Reads the next part of the current response's body; 0 once it is complete.
    public func readBody(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let socket else { return 0 }
        switch body {
        case .none:
            return 0
        case .length(let remaining):
            if remaining == 0 {
                body = .none
                return 0
            }
            let n = try socket.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(min(Int64(buffer.count), remaining)))))
            guard n > 0 else { throw truncated() }
            body = .length(remaining - Int64(n))
            return n
        case .chunked(var remaining):
            if remaining == 0 {
                guard let line = try socket.readLine(), let size = Int64(line.prefix { $0 != ";" }.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                    throw NetworkError("\(socket.peer) sent a malformed chunk header")
                }
                if size == 0 {
                    while let trailer = try socket.readLine(), !trailer.isEmpty {}
                    body = .none
                    return 0
                }
                remaining = size
            }
            let n = try socket.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(min(Int64(buffer.count), remaining)))))
            guard n > 0 else { throw truncated() }
            remaining -= Int64(n)
            if remaining == 0 { _ = try socket.readLine() }
            body = .chunked(remainingInChunk: remaining)
            return n
        case .untilClose:
            let n = try socket.read(into: buffer)
            if n == 0 {
                body = .none
                self.socket = nil
            }
            return n
        }
    }

    private func truncated() -> NetworkError {
        socket = nil
        body = .none
        return NetworkError("\(location): the server closed the connection before the end of the body")
    }

    /// A GET of a whole file into memory; a body longer than `limit` is refused.
    public func get(_ relative: String, headers: [(name: String, value: String)] = [], limit: Int) throws -> (Response, [UInt8]) {
        let response = try send("GET", relative, headers: headers)
        return (response, try readWholeBody(limit: limit, of: relative))
    }

    /// The rest of the current response's body, in memory; a body longer than `limit` is refused.
    public func readWholeBody(limit: Int, of relative: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try readBody(into: $0) }
            if n == 0 { break }
            bytes += chunk[..<n]
            if bytes.count > limit {
                socket = nil
                body = .none
                throw NetworkError("\(location.url(relative)): larger than \(limit) bytes; refused")
            }
        }
        return bytes
    }

    /// Escapes what may not appear in a request target, keeping '/'.
    static func percentEncoded(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: CharacterSet.urlPathAllowed) ?? path
    }
}
