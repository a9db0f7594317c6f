import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of text over a stream socket, as the control channel exchanges them: read a chunk at a
/// time up to a bound, written whole.
enum SocketLine {
    enum Received: Equatable {
        case line(String)
        /// No newline within the bound; the rest is left unread.
        case tooLong
        /// The stream ended, failed or timed out before a newline; what had come is kept.
        case unterminated(String)
    }

    /// Reads up to the first newline, keeping at most `limit` bytes before it; bytes after it are
    /// dropped (one line is all a connection carries). With a `deadline`, the whole line must have
    /// come by then: each receive waits only for the time left, so a peer that trickles bytes does
    /// not hold the connection longer than one that sends nothing.
    static func read(_ fd: Int32, limit: Int, deadline: ContinuousClock.Instant? = nil) -> Received {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let deadline, !waitNoLongerThan(deadline, fd) { return .unterminated(text(data)) }
            // Never more than one byte past the bound: enough to tell that the line is too long.
            let wanted = min(chunk.count, limit + 1 - data.count)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, wanted, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .unterminated(text(data)) }
            if let newline = chunk[..<n].firstIndex(of: UInt8(ascii: "\n")) {
                data += chunk[..<newline]
                return data.count > limit ? .tooLong : .line(text(data))
            }
            data += chunk[..<n]
            if data.count > limit { return .tooLong }
        }
    }

    /// Writes the whole line; false when the peer has gone. MSG_NOSIGNAL: a peer that leaves
    /// without reading its reply must not raise SIGPIPE, whatever the process does with it.
    @discardableResult
    static func write(_ line: String, to fd: Int32) -> Bool {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Sets the socket's receive timeout to the time left before `deadline`; false once it has passed.
    private static func waitNoLongerThan(_ deadline: ContinuousClock.Instant, _ fd: Int32) -> Bool {
        let left = (deadline - ContinuousClock.now).components
        let microseconds = left.attoseconds / 1_000_000_000_000
        // A zero timeval would mean "wait forever".
        guard left.seconds > 0 || (left.seconds == 0 && microseconds > 0) else { return false }
        var time = timeval(tv_sec: Int(left.seconds), tv_usec: Int(microseconds))
        return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size)) == 0
    }

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
