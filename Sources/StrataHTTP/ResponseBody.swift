import Foundation

/// The body of one response: how its head says it is delimited, read as that says, and checked as
/// the work of an attacker on the way. A length that is not one plain number, a body longer than
/// its reader accepts, a partial answer that is not the part asked for, a chunk that does not parse,
/// a connection that ends early: each is an error naming what was wrong, never a trap.
struct ResponseBody {
    /// The length the head announces, once checked.
    let announcedLength: Int64?
    /// Whether the connection ends with this response, so it cannot carry another request.
    let closesConnection: Bool
    /// The most the reader accepts.
    private let limit: Int64
    /// What the limit still allows of a body whose length is not announced.
    private var allowance: Int64
    private var framing: Framing

    private enum Framing: Equatable {
        case complete
        case length(remaining: Int64, of: Int64)
        case chunked(remainingInChunk: Int64)
        case untilClose
    }

    /// - Parameters:
    ///   - range: the range the request asked for, which a partial answer (206) must be.
    ///   - limit: the longest body the reader accepts.
    init(method: String, status: Int, headers: HTTPHeaders, range: RequestedRange?, limit: Int64) throws {
        let length = try Self.contentLength(in: headers)
        var limit = limit
        if status == 206 {
            guard let range else { throw NetworkError("a partial answer (206) to a request for the whole file; refused") }
            let part = try range.partLength(answeredBy: headers["Content-Range"])
            if let length, length != part {
                throw NetworkError("Content-Length \(length) does not match Content-Range '\(headers["Content-Range"] ?? "")'; refused")
            }
            limit = min(limit, part)
        }
        if let length, length > limit {
            throw NetworkError("Content-Length \(length) is more than the \(limit) bytes expected; refused")
        }
        let encodings = headers.values("Transfer-Encoding")
        let framing: Framing
        if method == "HEAD" || status == 204 || status == 304 {
            framing = .complete
        } else if !encodings.isEmpty {
            guard encodings.map({ $0.lowercased() }) == ["chunked"] else {
                throw NetworkError("unsupported Transfer-Encoding '\(encodings.joined(separator: ", ").prefix(80))'; refused")
            }
            // RFC 9112 §6.3: a sign of request smuggling or response splitting.
            guard length == nil else { throw NetworkError("both Transfer-Encoding and Content-Length; refused") }
            framing = .chunked(remainingInChunk: 0)
        } else if let length {
            framing = .length(remaining: length, of: length)
        } else {
            framing = .untilClose
        }
        self.framing = framing
        announcedLength = length
        self.limit = limit
        allowance = limit
        closesConnection = framing == .untilClose || headers.values("Connection").contains { $0.lowercased() == "close" }
    }

    /// The one length that every Content-Length field and list item states, if any.
    private static func contentLength(in headers: HTTPHeaders) throws -> Int64? {
        let lengths = headers.values("Content-Length")
        guard let text = lengths.first else { return nil }
        guard let length = Int64(decimal: Substring(text)) else { throw NetworkError("Content-Length '\(text.prefix(40))' is not a byte count; refused") }
        guard lengths.allSatisfy({ $0 == text }) else {
            throw NetworkError("conflicting Content-Length values (\(lengths.joined(separator: ", ").prefix(80))); refused")
        }
        return length
    }

    var isComplete: Bool { framing == .complete }

    /// Reads the next part of the body; 0 once it is complete.
    mutating func read(from socket: Socket, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        switch framing {
        case .complete:
            return 0
        case .length(let remaining, let total):
            if remaining == 0 {
                framing = .complete
                return 0
            }
            let n = try socket.read(into: Self.prefix(of: buffer, atMost: remaining))
            guard n > 0 else { throw NetworkError("the connection closed after \(total - remaining) of the \(total) bytes announced") }
            framing = .length(remaining: remaining - Int64(n), of: total)
            return n
        case .chunked(var remaining):
            if remaining == 0 {
                remaining = try Self.chunkSize(from: socket)
                if remaining == 0 {
                    _ = try HTTPHeaders.read(from: socket)  // The trailer, bounded as a head is.
                    framing = .complete
                    return 0
                }
                try spend(remaining)
            }
            let n = try socket.read(into: Self.prefix(of: buffer, atMost: remaining))
            guard n > 0 else { throw NetworkError("the connection closed in the middle of a chunk") }
            remaining -= Int64(n)
            if remaining == 0 {
                guard try socket.readLine(limit: 0, tooLong: "a chunk longer than its size says; refused") != nil else {
                    throw NetworkError("the connection closed in the middle of a chunk")
                }
            }
            framing = .chunked(remainingInChunk: remaining)
            return n
        case .untilClose:
            let n = try socket.read(into: buffer)
            if n == 0 {
                framing = .complete
            } else {
                try spend(Int64(n))
            }
            return n
        }
    }

    private mutating func spend(_ bytes: Int64) throws {
        guard bytes <= allowance else { throw NetworkError("the body is longer than the \(limit) bytes expected; refused") }
        allowance -= bytes
    }

    /// A chunk's size line: hexadecimal digits, then maybe `;` and extensions, which are ignored.
    private static func chunkSize(from socket: Socket) throws -> Int64 {
        guard let line = try socket.readLine(limit: 1024, tooLong: "a chunk-size line longer than 1024 bytes; refused") else {
            throw NetworkError("the connection closed before the end of the chunked body")
        }
        let digits = line.prefix { $0 != ";" }.trimmingCharacters(in: [" ", "\t"])
        // At most 15 digits: far beyond any limit, and no overflow.
        guard (1...15).contains(digits.count), digits.allSatisfy(\.isHexDigit), let size = Int64(digits, radix: 16) else {
            throw NetworkError("malformed chunk size '\(line.prefix(40))'; refused")
        }
        return size
    }

    private static func prefix(of buffer: UnsafeMutableRawBufferPointer, atMost count: Int64) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: buffer.prefix(Int(min(Int64(buffer.count), count))))
    }
}
