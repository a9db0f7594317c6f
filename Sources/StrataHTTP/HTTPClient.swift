import Foundation

/// A minimal HTTP/1.1 client for one server: one connection, kept alive between requests and
/// reopened when the server has closed it. Enough for static files (GET, HEAD, Range, conditional
/// requests) without pulling a networking stack into the tool. Not for concurrent use: run one
/// client per thread.
public final class HTTPClient {
    public let location: HTTPLocation
    let timeout: Int
    private var socket: Socket?
    /// The response whose body is being read, with its URL for messages.
    private var current: (url: String, body: ResponseBody)?

    /// The longest body a request accepts unless its caller says less: beyond any file a repository
    /// holds, but a bound on what a server's word can make us read.
    public static let bodyLimit: Int64 = 1 << 40
    static let statusLineLimit = 8 * 1024

    public struct Response: Sendable {
        public let status: Int
        public let reason: String
        public let headers: HTTPHeaders
        /// The body's length when the server states it: one plain number, within the request's limit.
        public let contentLength: Int64?
    }

    /// - Parameter timeout: seconds any one connect, read or write may wait.
    public init(location: HTTPLocation, timeout: Int = 30) {
        self.location = location
        self.timeout = timeout
    }

    /// Sends a request for a file of the repository and reads the response head; the body follows
    /// through `readBody`. Everything the server says is checked as an attacker's word; whatever is
    /// wrong is an error that names the URL, and the connection is dropped.
    /// - Parameters:
    ///   - range: one byte range to ask for; a partial answer (206) must be that range.
    ///   - limit: the longest body accepted; one announced or found longer is refused.
    public func send(_ method: String = "GET", _ relative: String, headers: [(name: String, value: String)] = [],
                     range: RequestedRange? = nil, limit: Int64 = bodyLimit) throws -> Response {
        let url = location.url(relative)
        let fields = [("Host", location.authority), ("User-Agent", "strata")] + headers + (range.map { [$0.header] } ?? [])
        let request = "\(method) \(Self.percentEncoded(location.target(relative))) HTTP/1.1\r\n\(HTTPHeaders(fields).serialized())\r\n"
        do {
            let (socket, statusLine) = try deliver(request)
            let (status, reason) = try Self.status(of: statusLine)
            let head = try HTTPHeaders.read(from: socket)
            let body = try ResponseBody(method: method, status: status, headers: head, range: range, limit: limit)
            current = (url, body)
            return Response(status: status, reason: reason, headers: head, contentLength: body.announcedLength)
        } catch {
            drop()
            throw NetworkError("\(url): \(error)")
        }
    }

    /// Sends a request and reads the status line of its answer. The kept-alive connection serves
    /// when the last body was read to its end and the server has not closed it meanwhile; if the
    /// server closes it before answering, the request goes again on a fresh one (GET and HEAD are
    /// idempotent).
    private func deliver(_ request: String) throws -> (Socket, String) {
        if current?.body.isComplete ?? true, let open = socket, !open.isReadable, let statusLine = try? exchange(request, on: open) {
            return (open, statusLine)
        }
        socket = nil
        let fresh = try Socket.connect(host: location.host, port: location.port, timeout: timeout)
        socket = fresh
        guard let statusLine = try exchange(request, on: fresh) else { throw NetworkError("the server closed the connection without answering") }
        return (fresh, statusLine)
    }

    private func exchange(_ request: String, on socket: Socket) throws -> String? {
        try socket.write(request)
        return try socket.readLine(limit: Self.statusLineLimit, tooLong: "a status line longer than \(Self.statusLineLimit) bytes; refused")
    }

    /// The status code and reason of `HTTP/1.x CODE REASON`. The code is a final one: no request of
    /// ours asks for an interim (1xx) answer.
    static func status(of line: String) throws -> (Int, String) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int64(decimal: parts[1]), (200...599).contains(code) else {
            throw NetworkError("not an HTTP response: '\(line.prefix(80))'")
        }
        return (Int(code), parts.count > 2 ? String(parts[2]) : "")
    }

    /// Reads the next part of the current response's body; 0 once it is complete.
    public func readBody(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let socket, let (url, unread) = current else { return 0 }
        var body = unread
        do {
            let n = try body.read(from: socket, into: buffer)
            current = (url, body)
            if n == 0 && body.closesConnection { self.socket = nil }
            return n
        } catch {
            drop()
            throw NetworkError("\(url): \(error)")
        }
    }

    /// Forgets the connection and the response on it, after an error or a refusal.
    private func drop() {
        socket = nil
        current = nil
    }

    /// A GET of a whole file into memory; a body longer than `limit` is refused.
    public func get(_ relative: String, headers: [(name: String, value: String)] = [], limit: Int) throws -> (Response, [UInt8]) {
        let response = try send("GET", relative, headers: headers, limit: Int64(limit))
        return (response, try readWholeBody())
    }

    /// The rest of the current response's body, in memory, within the limit its request gave.
    public func readWholeBody() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try readBody(into: $0) }
            if n == 0 { return bytes }
            bytes += chunk[..<n]
        }
    }

    /// Escapes what may not appear in a request target, keeping '/'.
    static func percentEncoded(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: CharacterSet.urlPathAllowed) ?? path
    }
}
