import Foundation
import StrataHTTP
import StrataTestSupport
import Testing

/// One way a served repository can lie or misbehave, and what the client's error must say about it.
struct Misbehaviour: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let answer: ScriptedHTTPServer.Answer
    let complaint: String
    /// The request made of the server; by default a GET of the whole file into memory.
    var request: @Sendable (HTTPClient) throws -> Void = { _ = try $0.get("file", limit: 1 << 20) }

    init(_ name: String, _ answer: String, then: ScriptedHTTPServer.Answer.After = .close, complaint: String,
         request: (@Sendable (HTTPClient) throws -> Void)? = nil) {
        testDescription = name
        self.answer = ScriptedHTTPServer.Answer(answer, then: then)
        self.complaint = complaint
        if let request { self.request = request }
    }

    static func ranged(_ range: RequestedRange) -> @Sendable (HTTPClient) throws -> Void {
        { client in
            _ = try client.send("GET", "file", range: range)
            _ = try client.readWholeBody()
        }
    }

    static let all: [Misbehaviour] = [
        Misbehaviour("negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc", complaint: "Invalid Content-Length"),
        Misbehaviour("non-numeric Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nabc", complaint: "Content-Length '12abc' is not a byte count"),
        Misbehaviour("signed Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", complaint: "Content-Length '+3' is not a byte count"),
        Misbehaviour("overflowing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc", complaint: "is not a byte count"),
        Misbehaviour("absurd Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\nabc",
                     complaint: "Content-Length 1000000000000000 is more than the \(HTTPClient.bodyLimit) bytes expected",
                     request: { _ = try $0.send("GET", "file") }),
        Misbehaviour("Content-Length beyond the caller's limit", "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
                     complaint: "Content-Length 11 is more than the 10 bytes expected", request: { _ = try $0.get("file", limit: 10) }),
        Misbehaviour("duplicated, different Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
                     complaint: "conflicting Content-Length values (3, 5)"),
        Misbehaviour("Content-Length list of different values", "HTTP/1.1 200 OK\r\nContent-Length: 3, 5\r\n\r\nabcde",
                     complaint: "conflicting Content-Length values (3, 5)"),
        Misbehaviour("body shorter than announced", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                     complaint: "the connection closed after 3 of the 10 bytes announced"),
        Misbehaviour("header bytes flood",
                     "HTTP/1.1 200 OK\r\n" + (0..<90).map { "X-Filler-\($0): \(String(repeating: "a", count: 1000))\r\n" }.joined() + "Content-Length: 0\r\n\r\n",
                     complaint: "a message head larger than 65536 bytes"),
        Misbehaviour("header lines flood", "HTTP/1.1 200 OK\r\n" + String(repeating: "X: a\r\n", count: 1000) + "Content-Length: 0\r\n\r\n",
                     complaint: "more than 100 header lines"),
        Misbehaviour("malformed header line", "HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\nabc", complaint: "malformed header line"),
        Misbehaviour("over-long status line", "HTTP/1.1 200 " + String(repeating: "A", count: 100_000) + "\r\n\r\n",
                     complaint: "a status line longer than 8192 bytes"),
        Misbehaviour("negative status", "HTTP/1.1 -5 Odd\r\nContent-Length: 0\r\n\r\n", complaint: "Unsupported response code in HTTP response"),
        Misbehaviour("negative chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc", complaint: "Illegal or missing hexadecimal sequence in chunked-encoding"),
        Misbehaviour("overflowing chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nabc",
                     complaint: "Too long hexadecimal number in chunked-encoding"),
        Misbehaviour("chunk beyond the caller's limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n" + String(repeating: "a", count: 256) + "\r\n0\r\n\r\n",
                     complaint: "the body is longer than the 10 bytes expected", request: { _ = try $0.get("file", limit: 10) }),
        Misbehaviour("chunk longer than its size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXYZ\r\n0\r\n\r\n",
                     complaint: "Malformed encoding found in chunked-encoding"),
        Misbehaviour("trailer flood", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + String(repeating: "X: a\r\n", count: 1000) + "\r\n",
                     complaint: "more than 100 header lines"),
        Misbehaviour("Transfer-Encoding with Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     complaint: "both Transfer-Encoding and Content-Length"),
        Misbehaviour("unsupported Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                     complaint: "unsupported Transfer-Encoding 'gzip, chunked'"),
        Misbehaviour("body until close beyond the caller's limit", "HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "a", count: 20),
                     complaint: "the body is longer than the 10 bytes expected", request: { _ = try $0.get("file", limit: 10) }),
        Misbehaviour("partial answer to a whole request", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2/10\r\nContent-Length: 3\r\n\r\nabc",
                     complaint: "a partial answer (206) to a request for the whole file"),
        Misbehaviour("another range than asked", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n0123456789",
                     complaint: "Content-Range 'bytes 0-9/10' does not answer the range asked for, bytes=5-", request: ranged(RequestedRange(from: 5))),
        Misbehaviour("a longer range than asked", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-199/1000\r\nContent-Length: 200\r\n\r\n",
                     complaint: "does not answer the range asked for, bytes=0-99", request: ranged(RequestedRange(from: 0, through: 99))),
        Misbehaviour("Content-Length other than the range's", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/1000\r\nContent-Length: 500\r\n\r\n",
                     complaint: "Content-Length 500 does not match Content-Range 'bytes 0-99/1000'", request: ranged(RequestedRange(from: 0, through: 99))),
        Misbehaviour("partial answer without Content-Range", "HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\n\r\nabc",
                     complaint: "a partial answer without a Content-Range", request: ranged(RequestedRange(from: 5))),
    ]
}

@Suite struct HostileServerTests {
    /// A server that misbehaves on `file` and answers `good` well.
    static func server(misbehaving answer: ScriptedHTTPServer.Answer) throws -> ScriptedHTTPServer {
        try ScriptedHTTPServer { request in
            request.path == "good" ? ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine", then: .keepAlive) : answer
        }
    }

    /// The error a request made of `server` ends in, if any.
    static func failure(of request: (HTTPClient) throws -> Void, at server: ScriptedHTTPServer, timeout: Int = 30) throws -> String? {
        let client = HTTPClient(location: try HTTPLocation(server.url), timeout: timeout)
        do {
            try request(client)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: Misbehaviour.all) func misbehaviourIsRefusedWithAClearError(_ misbehaviour: Misbehaviour) throws {
        let server = try Self.server(misbehaving: misbehaviour.answer)
        let client = HTTPClient(location: try HTTPLocation(server.url))
        let error = try #require(throws: NetworkError.self) { try misbehaviour.request(client) }
        #expect(error.description.hasPrefix("\(server.url)/file: ") && error.description.contains(misbehaviour.complaint), "\(error)")
        // The client dropped the connection it could not trust; the next request works.
        let (response, body) = try client.get("good", limit: 100)
        #expect(response.status == 200 && body == Array("fine".utf8))
    }

    @Test func aServerThatAcceptsAndNeverAnswersTimesOut() throws {
        let server = try Self.server(misbehaving: ScriptedHTTPServer.Answer([], then: .stall))
        let error = try #require(try Self.failure(of: { _ = try $0.get("file", limit: 100) }, at: server, timeout: 1))
        #expect(error.hasPrefix("\(server.url)/file: timed out (Operation too slow."), "\(error)")
    }

    @Test func aServerThatStopsMidBodyTimesOut() throws {
        let server = try Self.server(misbehaving: ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", then: .stall))
        let error = try #require(try Self.failure(of: { _ = try $0.get("file", limit: 100) }, at: server, timeout: 1))
        #expect(error.hasPrefix("\(server.url)/file: timed out (Operation too slow."), "\(error)")
    }

    @Test func aHostThatStopsAcceptingTimesOutOnConnect() throws {
        let server = try ScriptedHTTPServer.neverAccepting()
        // The first connection fills the listener's queue (and stays there, unaccepted, once closed).
        _ = try Self.failure(of: { _ = try $0.get("file", limit: 100) }, at: server, timeout: 1)
        let error = try #require(try Self.failure(of: { _ = try $0.get("file", limit: 100) }, at: server, timeout: 1))
        #expect(error.hasPrefix("\(server.url)/file: timed out (Failed to connect to 127.0.0.1 port"), "\(error)")
    }

    @Test func wellFormedAnswersAreRead() throws {
        let server = try ScriptedHTTPServer { request in
            switch request.path {
            case "chunked":
                ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3;name=value\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n", then: .keepAlive)
            case "listed":
                ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", then: .keepAlive)
            case "range":
                ScriptedHTTPServer.Answer("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-7/8\r\nContent-Length: 3\r\n\r\nfgh", then: .keepAlive)
            default:
                ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close", then: .close)
            }
        }
        let client = HTTPClient(location: try HTTPLocation(server.url))
        #expect(try client.get("chunked", limit: 5).1 == Array("abcde".utf8))
        #expect(try client.get("listed", limit: 3).1 == Array("abc".utf8))
        let partial = try client.send("GET", "range", range: RequestedRange(from: 5))
        #expect(partial.status == 206 && partial.contentLength == 3)
        #expect(try client.readWholeBody() == Array("fgh".utf8))
        #expect(try client.get("other", limit: 100).1 == Array("until close".utf8))
    }

    @Test func aResponseLeftUnreadDoesNotHoldUpTheNext() throws {
        let large = 3 << 20
        let server = try ScriptedHTTPServer { request in
            request.path == "large"
                ? ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: \(large)\r\n\r\n" + String(repeating: "a", count: large), then: .keepAlive)
                : ScriptedHTTPServer.Answer("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine", then: .keepAlive)
        }
        let client = HTTPClient(location: try HTTPLocation(server.url))
        // Read in part: more than the client holds back unread, so libcurl's transfer is paused.
        #expect(try client.send("GET", "large").contentLength == Int64(large))
        var part = [UInt8](repeating: 0, count: 1000)
        #expect(try part.withUnsafeMutableBytes { try client.readBody(into: $0) } > 0)
        #expect(try client.get("good", limit: 100).1 == Array("fine".utf8))
        // Read whole, a part at a time, after an abandoned one.
        _ = try client.send("GET", "large")
        #expect(try client.readWholeBody().count == large)
        #expect(try client.get("good", limit: 100).1 == Array("fine".utf8))
    }
}
