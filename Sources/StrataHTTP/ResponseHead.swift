import Foundation

/// The head of one response, checked as the work of an attacker before any of its body is taken: a
/// length that is not one plain number, a body announced longer than its reader accepts, a partial
/// answer that is not the part asked for, framing that could be read two ways — each is an error
/// naming what was wrong. The body's framing itself is libcurl's to read.
struct ResponseHead {
    let status: Int
    let reason: String
    let headers: HTTPHeaders
    /// The length the head announces, once checked.
    let announcedLength: Int64?
    /// The most of the body the reader accepts: its limit, or the part a 206 says it holds.
    let limit: Int64

    /// - Parameters:
    ///   - range: the range the request asked for, which a partial answer (206) must be.
    ///   - limit: the longest body the reader accepts.
    init(method: String, status: Int, reason: String, headers: HTTPHeaders, range: RequestedRange?, limit: Int64) throws {
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
        if !(method == "HEAD" || status == 204 || status == 304) && !encodings.isEmpty {
            guard encodings.map({ $0.lowercased() }) == ["chunked"] else {
                throw NetworkError("unsupported Transfer-Encoding '\(encodings.joined(separator: ", ").prefix(80))'; refused")
            }
            // RFC 9112 §6.3: a sign of request smuggling or response splitting.
            guard length == nil else { throw NetworkError("both Transfer-Encoding and Content-Length; refused") }
        }
        self.status = status
        self.reason = reason
        self.headers = headers
        announcedLength = length
        self.limit = limit
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

    /// The most a status line may take.
    static let statusLineLimit = 8 * 1024

    /// The status code and reason of `HTTP/VERSION CODE REASON` (`HTTP/2 200` from libcurl for HTTP/2).
    static func status(of line: String) throws -> (Int, String) {
        guard line.utf8.count <= statusLineLimit else { throw NetworkError("a status line longer than \(statusLineLimit) bytes; refused") }
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, ["HTTP/1.", "HTTP/2", "HTTP/3"].contains(where: parts[0].hasPrefix), parts[1].count == 3,
              let code = Int64(decimal: parts[1]), (100...599).contains(code) else {
            throw NetworkError("not an HTTP response: '\(line.prefix(80))'")
        }
        return (Int(code), parts.count > 2 ? String(parts[2]) : "")
    }
}
