import Dispatch
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// An HTTP/1.1 server for what Strata serves read-only — repository directories as static files,
/// single files, and small dynamic GET routes — on Hummingbird (SwiftNIO), whose types stay inside
/// this module. Configure it, then `run` it:
///
/// ```swift
/// var server = try HTTPServer(listen: "127.0.0.1:0", logger: logger)   // port 0: the kernel picks one
/// try server.serveDirectory("/srv/main", at: "/repos/main/")           // GET/HEAD, ranges, ETags
/// try server.serveFile("/srv/boot/vmlinuz", at: "/boot/vmlinuz", contentType: "application/octet-stream")
/// server.get("/boot/appliance") { request in                           // bytes made per request
///     request.accepts("application/json")
///         ? ServedResponse(contentType: "application/json", text: description)
///         : ServedResponse(contentType: "text/plain", text: script)
/// }
/// try server.run { address in print("http://\(address)/") }           // blocks until SIGINT or SIGTERM
/// ```
///
/// Request targets are matched after percent-decoding: routes (`get`, `serveFile`) by their exact
/// path first, then directories by their longest prefix. A target with a `..` segment is refused
/// (400); one that is routed nowhere, names no regular file, or passes a symbolic link is 404; only
/// GET and HEAD are answered (405). Files are opened beneath a directory descriptor taken when they
/// are added (openat2 with RESOLVE_BENEATH and no symbolic links), never by joining path strings,
/// and their bodies are streamed a chunk at a time. `limits` bounds what a client can hold: see
/// ``Limits``. One line per request is logged at `info` level on `logger`.
public struct HTTPServer: Sendable {
    /// What a client can make the server hold.
    public struct Limits: Sendable {
        /// Connections served at once. More wait, unaccepted, in the kernel's listen queue (and are
        /// refused by it once that is full) until a served one closes.
        public var connections = 256
        /// The most a request head may take, request line and fields together, and its number of
        /// fields; a larger head is answered 400 and its connection closed.
        public var headBytes = 16 * 1024
        public var headFields = 100
        /// How long a connection may go without completing a request head while no response is
        /// being written: a kept-alive connection left idle, or a client sending its head slowly.
        public var idleTimeout: Duration = .seconds(30)
        /// How long a response may stay blocked on a client that does not read it.
        public var stalledWriteTimeout: Duration = .seconds(30)
        /// Bytes per second of each response body, 0 for no limit: a fleet's downloads must not fill a link.
        public var rateLimit = 0

        public init() {}
    }

    public let listen: String
    public let limits: Limits
    private let logger: Logger
    private var routes = Routes()

    /// - Parameter listen: `HOST:PORT`, `:PORT` (every IPv4 interface) or `[IPv6]:PORT`; port 0 picks a free one.
    public init(listen: String, limits: Limits = Limits(), logger: Logger) throws {
        _ = try Self.split(listen)
        self.listen = listen
        self.limits = limits
        self.logger = logger
    }

    /// Serves the regular files beneath `directory` under `prefix` (`/` or `/NAME/…/`): GET and HEAD
    /// with Content-Length, ETag and `If-None-Match`, and single byte ranges (206, or 416).
    public mutating func serveDirectory(_ directory: String, at prefix: String = "/", contentType: String = "application/octet-stream") throws {
        try routes.addDirectory(ServedDirectory(directory, contentType: contentType), at: prefix)
    }

    /// Serves one file at `route`, as a directory's files are served. The file is looked up by its
    /// name in its directory on every request (so a file replaced by a rename is served new);
    /// symbolic links in `path` are resolved once, now.
    public mutating func serveFile(_ path: String, at route: String, contentType: String) throws {
        try routes.addFile(ServedFile(path, contentType: contentType), at: route)
    }

    /// Answers GET (and HEAD, with the same head and no body) at `route` with what `handler` makes.
    /// A handler that throws is answered 500, and its error logged.
    public mutating func get(_ route: String, _ handler: @escaping @Sendable (ServedRequest) async throws -> ServedResponse) throws {
        try routes.addHandler(handler, at: route)
    }

    /// Binds, tells `onListening` the address bound (`HOST:PORT`, the port filled in when 0 was
    /// asked for), and serves until the process gets SIGINT or SIGTERM; then stops accepting and
    /// lets the responses under way finish. Throws when the address cannot be bound.
    public func run(onListening: @escaping @Sendable (String) -> Void) throws {
        let (host, port) = try Self.split(listen)
        var configuration = HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestGuard(stalledWriteTimeout: TimeAmount(limits.stalledWriteTimeout), logger: logger)],
            idleTimeout: TimeAmount(limits.idleTimeout))
        configuration.httpDecoder = .init(maxHeaderFieldSize: limits.headBytes, maxHeaderListSize: limits.headBytes, maxHeaderFieldCount: limits.headFields)
        // Hummingbird's own messages (started, stopped) are not requests: only its warnings show.
        var frameworkLogger = logger
        frameworkLogger.logLevel = max(logger.logLevel, .warning)
        let application = Application(
            responder: Responder(routes: routes, rateLimit: limits.rateLimit, logger: logger),
            server: .http1(configuration: configuration),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: "strata",
                availableConnectionsDelegate: MaximumAvailableConnections(limits.connections)),
            onServerRunning: { channel in onListening(Self.describe(channel.localAddress)) },
            logger: frameworkLogger)
        // The callers are synchronous commands; the server runs on Swift's concurrency pool while this thread waits.
        let outcome = Mutex<(any Error)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task {
            do {
                try await application.runService()
            } catch {
                outcome.withLock { $0 = error }
            }
            finished.signal()
        }
        finished.wait()
        if let error = outcome.withLock({ $0 }) { throw ServerError("serve on \(listen): \(error)") }
    }

    static func split(_ listen: String) throws -> (host: String, port: Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServerError("\(listen): expected HOST:PORT, :PORT or [IPv6]:PORT")
        }
        var host = listen[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return (host.isEmpty ? "0.0.0.0" : String(host), port)
    }

    private static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "?" }
        return (ip.contains(":") ? "[\(ip)]" : ip) + ":\(port)"
    }
}

/// A server that cannot be set up as asked, or could not run.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
