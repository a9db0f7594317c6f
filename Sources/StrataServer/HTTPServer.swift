import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// An HTTP/1.1 server for what Strata serves read-only — repository directories as static files,
/// single files, and small dynamic GET routes — on Hummingbird (SwiftNIO), whose types stay inside
/// this module. Configure it, then `run` it:
///
/// ```swift
/// var server = try HTTPServer(listen: "127.0.0.1:0", logger: logger)   // port 0: the kernel picks one
/// try server.serveDirectory("/srv/main", at: "/repos/main/")           // GET/HEAD, ranges, ETags
/// try server.serveFile("/srv/boot/vmlinuz", at: "/boot/vmlinuz", contentType: "application/octet-stream")
/// try server.get("/boot/appliance") { request in                       // bytes made per request
///     request.accepts("application/json")
///         ? ServedResponse(contentType: "application/json", text: description)
///         : ServedResponse(contentType: "text/plain", text: script)
/// }
/// try server.run { address in print("http://\(address)/") }           // blocks until SIGINT or SIGTERM
/// // or, beside other work (and in tests): let running = try server.start(); … running.port …; try running.stop()
/// ```
///
/// Request targets are matched after percent-decoding: routes (`get`, `serveFile`) by their exact
/// path first, then directories by their longest prefix. A target with a `..` segment is refused
/// (400); one that is routed nowhere, names no regular file, or passes a symbolic link is 404; only
/// GET and HEAD are answered (405). Files are opened beneath a directory descriptor taken when they
/// are added (openat2 with RESOLVE_BENEATH and no symbolic links), never by joining path strings,
/// and their bodies are streamed a chunk at a time. The server's tasks run on threads of their own,
/// so a caller blocking Swift's shared pool cannot stall it. `limits` bounds what a client can hold: see
/// ``Limits``. One line per request is logged at `info` level on `logger`.
public struct HTTPServer: Sendable {
    /// What a client can make the server hold.
    public struct Limits: Sendable {
        /// Connections served at once. More wait, unaccepted, in the kernel's listen queue (and are
        /// refused by it once that is full) until a served one closes. NIO accepts up to four at a
        /// time, checking the count before each batch, so a burst can take a few more.
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
    public func run(onListening: (String) -> Void) throws {
        let server = try launch(stoppedBy: [.sigint, .sigterm])
        onListening(server.address)
        try server.wait()
    }

    /// Binds and serves in the background until `stop` (for a program that serves beside other
    /// work, and for tests); returns once bound. Throws when the address cannot be bound.
    public func start() throws -> RunningServer {
        try launch(stoppedBy: [])
    }

    private func launch(stoppedBy signals: [UnixSignal]) throws -> RunningServer {
        let (host, port) = try Self.split(listen)
        var configuration = HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestGuard(stalledWriteTimeout: TimeAmount(limits.stalledWriteTimeout), logger: logger)],
            idleTimeout: TimeAmount(limits.idleTimeout))
        configuration.httpDecoder = .init(maxHeaderFieldSize: limits.headBytes, maxHeaderListSize: limits.headBytes, maxHeaderFieldCount: limits.headFields)
        // Hummingbird's own messages (started, stopped) are not requests: only its warnings show.
        var frameworkLogger = logger
        frameworkLogger.logLevel = max(logger.logLevel, .warning)
        let running = RunningServer()
        let application = Application(
            responder: Responder(routes: routes, rateLimit: limits.rateLimit, logger: logger),
            server: .http1(configuration: configuration),
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port), serverName: "strata",
                availableConnectionsDelegate: MaximumAvailableConnections(limits.connections)),
            onServerRunning: { channel in running.bound(to: Self.describe(channel.localAddress)) },
            logger: frameworkLogger)
        let group = ServiceGroup(services: [application], gracefulShutdownSignals: signals, logger: frameworkLogger)
        try running.launch(group, listen: listen)
        return running
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

/// A server serving on Swift's concurrency pool while the threads of its (synchronous) callers wait.
public final class RunningServer: @unchecked Sendable {
    // Every stored variable is read and written with `condition` locked.
    private let condition = NSCondition()
    private var boundAddress: String?
    private var group: ServiceGroup?
    private var failure: (any Error)?
    private var finished = false

    init() {}

    /// The address bound, as `HOST:PORT` (`[IPv6]:PORT`).
    public var address: String { locked { boundAddress ?? "" } }

    /// The port bound, the one the kernel picked when 0 was asked for.
    public var port: Int { Int(address.split(separator: ":").last ?? "") ?? 0 }

    /// Stops accepting connections, lets the responses under way finish, and returns once it is done.
    public func stop() throws {
        if let group = locked({ group }) {
            Task { await group.triggerGracefulShutdown() }
        }
        try wait()
    }

    /// Returns when the server has stopped (by `stop`, or by a signal `run` named), throwing what
    /// stopped it otherwise.
    public func wait() throws {
        if let failure = waitUntil({ finished }) { throw failure }
    }

    fileprivate func launch(_ group: ServiceGroup, listen: String) throws {
        locked { self.group = group }
        Task(executorPreference: ServerThreads.shared) { [self] in
            var failure: (any Error)?
            do {
                try await group.run()
            } catch {
                failure = ServerError("serve on \(listen): \(error)")
            }
            locked {
                self.failure = failure
                finished = true
            }
        }
        if let failure = waitUntil({ boundAddress != nil || finished }) { throw failure }
    }

    fileprivate func bound(to address: String) {
        locked { boundAddress = address }
    }

    /// Runs `body` with the lock held, and wakes the threads waiting for a change.
    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer {
            condition.broadcast()
            condition.unlock()
        }
        return body()
    }

    /// Waits until `ready`, then returns the failure, if any.
    private func waitUntil(_ ready: () -> Bool) -> (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        while !ready() { condition.wait() }
        return failure
    }
}

/// The threads the server's tasks run on, and those of the connections and requests they start
/// (which inherit the preference): not Swift's shared pool, whose few threads a program embedding
/// the server may block (a synchronous test waiting for an answer from it would then wait forever).
final class ServerThreads: TaskExecutor, @unchecked Sendable {
    static let shared = ServerThreads(count: max(4, ProcessInfo.processInfo.activeProcessorCount))

    // `jobs` is read and written with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init(count: Int) {
        for _ in 0..<count {
            let thread = Thread { [self] in work() }
            thread.name = "strata-server"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() -> Never {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

/// A server that cannot be set up as asked, or could not run.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
