import CLinux
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The running daemon's control socket: one request line in, one reply out. Requests: `update`,
/// `revert PATH`, `status`, `snapshot IMAGE`, `reset`.
///
/// Root only, and not on the socket's permissions alone (mode 0600 in a 0700 directory): the daemon
/// runs as root beneath an appliance that may be compromised, so every connection's peer must be
/// root by the credentials the kernel recorded when it connected. Peers are served concurrently,
/// with bounds on how many, how long a request may take to arrive and how long it may be.
public enum ControlChannel {
    /// Replies start with "ok" or "error: ". Called concurrently, one thread per connection: the
    /// handler does its own locking.
    public typealias Handler = @Sendable (String) -> String

    /// What one peer may cost the daemon.
    public struct Limits: Sendable {
        /// Seconds a peer has to send its whole request line, before it is dropped unheard.
        public var requestTimeout: Int
        /// The longest request line: a 4,096-byte path and a verb fit many times over.
        public var requestBytes = 64 * 1024
        /// Connections served at once; a peer beyond them is answered `error: busy`.
        public var connections = 16

        public init(requestTimeout: Int = 5) {
            self.requestTimeout = requestTimeout
        }
    }

    /// Whether `path` fits a Unix socket address (108 bytes on Linux, with its terminating zero).
    public static func fits(_ path: String) -> Bool { path.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) }

    /// Listens on `path` on a background thread until the process exits.
    public static func serve(at path: String, limits: Limits = Limits(), handler: @escaping Handler) throws {
        unlink(path)
        let fd = try unixSocket()
        var address = try socketAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 16) == 0 else { throw FSError.last }
        let server = ControlServer(listener: fd, limits: limits, handler: handler)
        Thread { server.acceptForever() }.start()
    }

    /// What a failed reply says, for a message to the user (without the protocol's `error: `).
    public static func failure(_ reply: String) -> String {
        reply.hasPrefix("error: ") ? String(reply.dropFirst(7)) : reply
    }

    /// Sends a request to the daemon listening at `path`; nil when no daemon listens there.
    public static func send(_ request: String, to path: String) throws -> String? {
        let fd = try unixSocket()
        defer { close(fd) }
        var address = try socketAddress(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return nil }
        guard SocketLine.write(request, to: fd) else { throw FSError.last }
        switch SocketLine.read(fd, limit: replyBytes) {
        case .line(let reply), .unterminated(let reply): return reply
        case .tooLong: throw FSError(EMSGSIZE)
        }
    }

    /// The longest reply a client accepts (a status lists every layer; an error may quote a path).
    static let replyBytes = 16 << 20

    private static func unixSocket() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FSError.last }
        return fd
    }

    private static func socketAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw FSError(ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }
}

/// Accepts control connections and serves each on a thread of its own.
private final class ControlServer: Sendable {
    /// The listening socket; only the accept thread uses it.
    private let listener: Int32
    private let limits: ControlChannel.Limits
    private let handler: ControlChannel.Handler
    /// Connections being served. The accept thread counts one in before starting a connection's
    /// thread, which counts it out when done. An atomic and no lock: it is only a bound, compared and
    /// changed in single operations (a connection that is just finishing may be seen late, and one
    /// more peer told it is busy).
    private let inFlight = Atomic<Int>(0)

    init(listener: Int32, limits: ControlChannel.Limits, handler: @escaping ControlChannel.Handler) {
        self.listener = listener
        self.limits = limits
        self.handler = handler
    }

    func acceptForever() -> Never {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                // Out of descriptors, say: wait for connections to finish rather than spin.
                if errno != EINTR { usleep(10_000) }
                continue
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            // Bounds every reply's write, so a peer that never reads cannot hold a thread.
            var time = timeval(tv_sec: limits.requestTimeout, tv_usec: 0)
            setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
            guard peerIsRoot(connection) else {
                refuse(connection, "error: permission denied (root only)")
                continue
            }
            guard inFlight.add(1, ordering: .relaxed).oldValue < limits.connections else {
                inFlight.subtract(1, ordering: .relaxed)
                refuse(connection, "error: busy")
                continue
            }
            Thread { [self] in
                serve(connection)
                close(connection)
                inFlight.subtract(1, ordering: .relaxed)
            }.start()
        }
    }

    /// Reads one request and answers it. A peer that sends nothing, or part of a line, by the deadline
    /// is dropped without anything being run.
    private func serve(_ connection: Int32) {
        let deadline = ContinuousClock.now + .seconds(limits.requestTimeout)
        switch SocketLine.read(connection, limit: limits.requestBytes, deadline: deadline) {
        case .line(let request): SocketLine.write(handler(request), to: connection)
        case .tooLong: SocketLine.write("error: request too long", to: connection)
        case .unterminated: break
        }
    }

    private func refuse(_ connection: Int32, _ reply: String) {
        SocketLine.write(reply, to: connection)
        close(connection)
    }

    /// Whether the peer is root, by the credentials the kernel recorded when it connected (a
    /// descriptor passed on to another process keeps its connector's credentials).
    private func peerIsRoot(_ connection: Int32) -> Bool {
        var credentials = ucred()
        var length = socklen_t(MemoryLayout<ucred>.size)
        guard getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
              Int(length) == MemoryLayout<ucred>.size else { return false }
        return credentials.uid == 0
    }
}
