import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed network call, naming the call and the peer or address it was for.
public struct NetworkError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    init(_ call: String, _ peer: String, errno code: Int32 = errno) {
        // A receive or send past its SO_RCVTIMEO/SO_SNDTIMEO fails with EAGAIN.
        let reason = code == EAGAIN ? "timed out" : String(cString: strerror(code))
        description = "\(call) \(peer): \(reason)"
    }
}

/// An owned TCP socket of the server with a read buffer, closed when it goes away. Used by one thread at a time.
final class Socket {
    let fd: Int32
    /// Who is at the other end, for error messages.
    let peer: String
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close(fd) }

    static func setTimeout(_ fd: Int32, seconds: Int) {
        var time = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    struct Address {
        var family: Int32
        var storage: [UInt8]
        var length: socklen_t
    }

    static func addresses(host: String?, port: Int, passive: Bool) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw NetworkError("cannot resolve \(host ?? "*"):\(port): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var result: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            let bytes = UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen))
            result.append(Address(family: info.pointee.ai_family, storage: Array(bytes), length: info.pointee.ai_addrlen))
            cursor = info.pointee.ai_next
        }
        return result
    }

    // MARK: Writing

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw NetworkError("send to", peer)
                }
                offset += n
            }
        }
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    // MARK: Reading

    /// Fills the buffer when it is empty; false at end of stream.
    private func fill() throws -> Bool {
        if start < end { return true }
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw NetworkError("receive from", peer)
            }
            start = 0
            end = n
            return n > 0
        }
    }

    /// One line without its CR LF; nil at end of stream before any byte. Lines are bounded, so a
    /// peer cannot make us buffer without end: one longer than `limit` is refused with the error `tooLong`.
    func readLine(limit: Int = 16 * 1024, tooLong: String = "a line longer than 16384 bytes; refused") throws -> String? {
        var line: [UInt8] = []
        while true {
            guard try fill() else {
                if line.isEmpty { return nil }
                throw NetworkError("the connection closed in the middle of a line")
            }
            if let newline = buffer[start..<end].firstIndex(of: 0x0A) {
                line += buffer[start..<newline]
                start = newline + 1
                if line.last == 0x0D { line.removeLast() }
                guard line.count <= limit else { throw NetworkError(tooLong) }
                return String(decoding: line, as: UTF8.self)
            }
            line += buffer[start..<end]
            start = end
            // One byte over: the CR of a line exactly at the limit.
            guard line.count <= limit + 1 else { throw NetworkError(tooLong) }
        }
    }
}
