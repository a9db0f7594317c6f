import Foundation
import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Serves one directory read-only as static files over HTTP/1.1, as a repository needs: GET and
/// HEAD, one byte range per request (to resume downloads), ETags with `If-None-Match` (to refresh an
/// index cheaply), keep-alive. No listings, no writes, nothing outside the directory: a target with a
/// `..` segment is refused, and a symbolic link leading out of the directory is not followed.
/// One thread per connection; idle connections close after `idleTimeout` seconds; `rateLimit`
/// (bytes per second per connection, 0 for none) keeps a fleet's downloads from filling a link.
public final class StaticFileServer: Sendable {
    /// The served directory, with symbolic links resolved.
    public let root: String
    /// The address actually bound (the port filled in when 0 was asked for), as `HOST:PORT`.
    public let address: String
    private let listener: Int32
    private let idleTimeout: Int
    private let rateLimit: Int

    /// Binds `listen` (`HOST:PORT`, `:PORT` for every interface, `[::1]:PORT`; port 0 picks a free one).
    public init(root: String, listen: String, idleTimeout: Int = 30, rateLimit: Int = 0) throws {
        guard let resolved = realpath(root, nil) else { throw NetworkError("realpath", root) }
        self.root = String(cString: resolved)
        free(resolved)
        self.idleTimeout = idleTimeout
        self.rateLimit = rateLimit
        let (host, port) = try Self.split(listen)
        var bound: Int32 = -1
        var failure = NetworkError("bind \(listen): no usable address")
        for candidate in try Socket.addresses(host: host, port: port, passive: true) {
            let fd = socket(candidate.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let ok = candidate.storage.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), candidate.length) } == 0
                && Glibc.listen(fd, 128) == 0
            if ok {
                bound = fd
                break
            }
            failure = NetworkError("bind", listen)
            close(fd)
        }
        guard bound >= 0 else { throw failure }
        listener = bound
        address = Self.localAddress(of: bound)
    }

    deinit { close(listener) }

    static func split(_ listen: String) throws -> (host: String?, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw NetworkError("\(listen): expected HOST:PORT, :PORT or [IPv6]:PORT")
        }
        var host = listen[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (host.isEmpty ? nil : String(host), port)
    }

    private static func localAddress(of fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                getsockname(fd, address, &length)
                return getnameinfo(address, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        func text(_ characters: [CChar]) -> String {
            String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let name = text(host)
        return (name.contains(":") ? "[\(name)]" : name) + ":" + text(service)
    }

    /// Accepts connections until the process ends; `log` receives one line per request.
    public func run(log: @escaping @Sendable (String) -> Void) -> Never {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            Socket.setTimeout(fd, seconds: idleTimeout)
            // A response is a head then a body: without this, Nagle's algorithm holds the body
            // back until the client's delayed ACK of the head, some 40 ms per small object.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            Thread { [self] in self.serve(Socket(fd: fd, peer: "client"), log: log) }.start()
        }
    }

    // MARK: One connection

    private func serve(_ connection: Socket, log: @Sendable (String) -> Void) {
        do {
            while let requestLine = try connection.readLine() {
                let parts = requestLine.split(separator: " ").map(String.init)
                guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
                    try respond(connection, status: 400, keepAlive: false)
                    return log("\(requestLine.prefix(80)) 400")
                }
                let headers = try HTTPHeaders.read(from: connection)
                let connectionHeader = headers["Connection"]?.lowercased()
                let keepAlive = parts[2] == "HTTP/1.1" ? connectionHeader != "close" : connectionHeader == "keep-alive"
                let reply = answer(method: parts[0], target: parts[1], headers: headers, on: connection, keepAlive: keepAlive)
                // Logged before the body goes out, so a transfer the client cuts short is logged too.
                log("\(parts[0]) \(parts[1]) \(reply.status)")
                try reply.send()
                if !keepAlive { return }
            }
        } catch {
            // The client went away or stalled; its connection simply ends.
        }
    }

    /// A response decided on, and how to send it (which closes the file it serves, if any).
    private struct Reply {
        var status: Int
        var send: () throws -> Void
    }

    private func answer(method: String, target: String, headers: HTTPHeaders, on connection: Socket, keepAlive: Bool) -> Reply {
        func refuse(_ status: Int, _ extra: [(name: String, value: String)] = []) -> Reply {
            Reply(status: status) { try self.respond(connection, status: status, extra: extra, keepAlive: keepAlive, head: method == "HEAD") }
        }
        guard method == "GET" || method == "HEAD" else { return refuse(405, [("Allow", "GET, HEAD")]) }
        let file: (fd: Int32, size: Int64, modified: timespec)
        switch open(target) {
        case .failure(let refusal): return refuse(refusal.code)
        case .success(let opened): file = opened
        }
        let etag = "\"\(String(file.modified.tv_sec, radix: 16))\(String(file.modified.tv_nsec, radix: 16))-\(String(file.size, radix: 16))\""
        var fields: [(name: String, value: String)] = [("ETag", etag), ("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]
        var range = 0..<file.size
        var status = 200
        if headers["If-None-Match"].map({ $0 == etag || $0 == "*" }) == true {
            close(file.fd)
            return Reply(status: 304) { try self.respond(connection, status: 304, extra: fields, keepAlive: keepAlive, head: true) }
        }
        if let asked = headers["Range"], headers["If-Range"].map({ $0 == etag }) ?? true {
            switch ByteRange.parse(asked, size: file.size) {
            case .whole:
                break
            case .unsatisfiable:
                close(file.fd)
                return refuse(416, [("Content-Range", "bytes */\(file.size)")])
            case .part(let part):
                range = part
                status = 206
                fields.append(("Content-Range", "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(file.size)"))
            }
        }
        fields.append(("Content-Length", String(range.count)))
        return Reply(status: status) { [fields, range, status] in
            defer { close(file.fd) }
            try connection.write(Self.head(status: status, fields: fields, keepAlive: keepAlive))
            if method == "GET" { try self.send(file.fd, range: range, to: connection) }
        }
    }

    private struct Refusal: Error {
        let code: Int
    }

    /// Opens the regular file a request target names, or says which status refuses it.
    private func open(_ target: String) -> Result<(fd: Int32, size: Int64, modified: timespec), Refusal> {
        let path = target.prefix { $0 != "?" && $0 != "#" }
        guard path.hasPrefix("/"), let decoded = path.removingPercentEncoding, !decoded.contains("\0") else { return .failure(Refusal(code: 400)) }
        guard !decoded.split(separator: "/").contains("..") else { return .failure(Refusal(code: 400)) }
        guard let resolved = realpath(root + decoded, nil) else { return .failure(Refusal(code: 404)) }
        let real = String(cString: resolved)
        free(resolved)
        guard real.hasPrefix(root == "/" ? "/" : root + "/") else { return .failure(Refusal(code: 404)) }
        let fd = Glibc.open(real, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failure(Refusal(code: errno == EACCES ? 403 : 404)) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            return .failure(Refusal(code: 404))
        }
        return .success((fd, Int64(st.st_size), st.st_mtim))
    }

    private func send(_ fd: Int32, range: Range<Int64>, to connection: Socket) throws {
        var offset = off_t(range.lowerBound)
        let started = ContinuousClock.now
        let chunk = rateLimit > 0 ? max(rateLimit / 10, 1) : 1 << 30
        while offset < range.upperBound {
            let n = sendfile(connection.fd, fd, &offset, min(Int(range.upperBound) - offset, chunk))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw NetworkError("sendfile to", connection.peer) }
            if rateLimit > 0 {
                let due = started + .milliseconds((Int64(offset) - range.lowerBound) * 1000 / Int64(rateLimit))
                let wait = (due - ContinuousClock.now).components
                if wait.seconds >= 0 && (wait.seconds, wait.attoseconds) > (0, 0) {
                    Thread.sleep(forTimeInterval: Double(wait.seconds) + Double(wait.attoseconds) / 1e18)
                }
            }
        }
    }

    private func respond(_ connection: Socket, status: Int, extra: [(name: String, value: String)] = [], keepAlive: Bool, head: Bool = false) throws {
        let body = status == 304 ? "" : "\(status) \(Self.reason(status))\n"
        let fields = extra + [("Content-Length", String(body.utf8.count))] + (body.isEmpty ? [] : [("Content-Type", "text/plain")])
        try connection.write(Self.head(status: status, fields: status == 304 ? extra : fields, keepAlive: keepAlive) + (head ? "" : body))
    }

    private static func head(status: Int, fields: [(name: String, value: String)], keepAlive: Bool) -> String {
        "HTTP/1.1 \(status) \(reason(status))\r\n"
            + HTTPHeaders(fields + [("Server", "strata"), ("Connection", keepAlive ? "keep-alive" : "close")]).serialized() + "\r\n"
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 206: "Partial Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 416: "Range Not Satisfiable"
        default: "Status"
        }
    }
}

/// A `Range: bytes=…` request against a file of known size. Only one range is served; a list of
/// ranges or a header that does not parse is answered with the whole file, as RFC 9110 allows.
enum ByteRange: Equatable {
    case whole
    case part(Range<Int64>)
    case unsatisfiable

    static func parse(_ header: String, size: Int64) -> ByteRange {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst("bytes=".count).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix >= 0 else { return .whole }
            return suffix == 0 || size == 0 ? .unsatisfiable : .part(max(0, size - suffix)..<size)
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        let end: Int64
        if last.isEmpty {
            end = size - 1
        } else {
            guard let stated = Int64(last), stated >= start else { return .whole }
            end = min(stated, size - 1)
        }
        return start >= size ? .unsatisfiable : .part(start..<(end + 1))
    }
}
