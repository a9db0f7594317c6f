import CCurl
import Foundation

/// An HTTP client for one server, on libcurl: HTTP/1.1 and HTTP/2 (offered over TLS), `http://` and
/// `https://` with the system's CA store or the client's own trust, proxies from the environment
/// (`http_proxy`, `https_proxy`, `no_proxy`, read by libcurl), redirects between http and https,
/// connections kept alive and reused between requests. Responses are pulled: `send` returns the
/// checked head, `readBody` the body a part at a time, so a caller streams a large file without
/// holding it. Not for concurrent use: run one client per thread (each has its own connections).
public final class HTTPClient {
    public let location: HTTPLocation
    public let trust: Trust
    let timeout: Int
    private let easy: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    /// Where libcurl words its last error (CURLOPT_ERRORBUFFER).
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    private let transfer = Transfer()
    /// Fields of the request in flight, which libcurl reads until it ends.
    private var requestFields: UnsafeMutablePointer<curl_slist>?
    /// Whether a transfer is attached to the multi handle, from `send` until its body is read or dropped.
    private var inFlight = false

    /// The longest body a request accepts unless its caller says less: beyond any file a repository
    /// holds, but a bound on what a server's word can make us read.
    public static let bodyLimit: Int64 = 1 << 40
    /// Redirects followed for one request.
    static let redirectLimit = 5

    /// Which servers an https:// client believes.
    public struct Trust: Sendable, Hashable {
        /// A PEM file of the certificate authorities to trust instead of the system's store.
        public var caFile: String?
        /// The server's public key, pinned: a PEM or DER file, or `sha256//BASE64[;sha256//…]`.
        public var pinnedPublicKey: String?

        public init(caFile: String? = nil, pinnedPublicKey: String? = nil) {
            self.caFile = caFile
            self.pinnedPublicKey = pinnedPublicKey
        }

        /// The system's store, unless the environment names a CA file as the curl tool reads it:
        /// `CURL_CA_BUNDLE`, else `SSL_CERT_FILE`.
        public static var environment: Trust {
            let variables = ProcessInfo.processInfo.environment
            return Trust(caFile: [variables["CURL_CA_BUNDLE"], variables["SSL_CERT_FILE"]].compactMap { $0 }.first { !$0.isEmpty })
        }
    }

    public struct Response: Sendable {
        public let status: Int
        public let reason: String
        public let headers: HTTPHeaders
        /// The body's length when the server states it: one plain number, within the request's limit.
        public let contentLength: Int64?
    }

    private static let initialized: Bool = curl_global_init(STRATA_CURL_GLOBAL_ALL) == CURLE_OK

    /// - Parameter timeout: seconds a connect may take, and a transfer may go without receiving a byte.
    public init(location: HTTPLocation, timeout: Int = 30, trust: Trust = .environment) {
        precondition(Self.initialized, "libcurl failed to initialize")
        self.location = location
        self.timeout = timeout
        self.trust = trust
        guard let easy = curl_easy_init(), let multi = curl_multi_init() else { fatalError("libcurl: out of memory") }
        self.easy = easy
        self.multi = multi
        errorBuffer.initialize(to: 0)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        var failed: [CURLcode] = [
            strata_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1),
            strata_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer),
            strata_curl_setopt_write_function(easy, CURLOPT_HEADERFUNCTION, headerCallback),
            strata_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, context),
            strata_curl_setopt_write_function(easy, CURLOPT_WRITEFUNCTION, bodyCallback),
            strata_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, context),
            strata_curl_setopt_string(easy, CURLOPT_USERAGENT, "strata"),
            strata_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"),
            strata_curl_setopt_string(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"),
            strata_curl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 1),
            strata_curl_setopt_long(easy, CURLOPT_MAXREDIRS, Self.redirectLimit),
            strata_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, STRATA_CURL_HTTP_VERSION_2TLS),
            strata_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT, timeout),
            // A transfer that receives nothing for `timeout` seconds, head or body, has stalled.
            strata_curl_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1),
            strata_curl_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, timeout),
            strata_curl_setopt_long(easy, CURLOPT_BUFFERSIZE, 256 * 1024),
            strata_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1),
        ]
        if let caFile = trust.caFile { failed.append(strata_curl_setopt_string(easy, CURLOPT_CAINFO, caFile)) }
        if let key = trust.pinnedPublicKey { failed.append(strata_curl_setopt_string(easy, CURLOPT_PINNEDPUBLICKEY, key)) }
        if let code = failed.first(where: { $0 != CURLE_OK }) {
            fatalError("libcurl refused an option: \(String(cString: curl_easy_strerror(code)))")
        }
    }

    deinit {
        detach()
        curl_easy_cleanup(easy)
        curl_multi_cleanup(multi)
        errorBuffer.deallocate()
    }

    /// Sends a request for a file of the repository and reads the response head; the body follows
    /// through `readBody`. Everything the server says is checked as an attacker's word; whatever is
    /// wrong is an error that names the URL, and the connection is dropped. A response whose body
    /// was not read to its end is abandoned.
    /// - Parameters:
    ///   - method: GET or HEAD.
    ///   - range: one byte range to ask for; a partial answer (206) must be that range.
    ///   - limit: the longest body accepted; one announced or found longer is refused.
    public func send(_ method: String = "GET", _ relative: String, headers: [(name: String, value: String)] = [],
                     range: RequestedRange? = nil, limit: Int64 = bodyLimit) throws -> Response {
        precondition(method == "GET" || method == "HEAD", "HTTPClient sends GET and HEAD only")
        detach()
        let url = location.url(relative)
        transfer.begin(url: url, method: method, range: range, limit: limit)
        errorBuffer[0] = 0
        for field in headers { requestFields = curl_slist_append(requestFields, "\(field.name): \(field.value)") }
        let options = [
            strata_curl_setopt_string(easy, CURLOPT_URL, location.requestURL(relative)),
            method == "HEAD" ? strata_curl_setopt_long(easy, CURLOPT_NOBODY, 1) : strata_curl_setopt_long(easy, CURLOPT_HTTPGET, 1),
            strata_curl_setopt_string(easy, CURLOPT_RANGE, range?.specification),
            strata_curl_setopt_pointer(easy, CURLOPT_HTTPHEADER, requestFields),
        ]
        if let code = options.first(where: { $0 != CURLE_OK }) { throw NetworkError("\(url): \(String(cString: curl_easy_strerror(code)))") }
        guard curl_multi_add_handle(multi, easy) == CURLM_OK else { throw NetworkError("\(url): libcurl could not start the transfer") }
        inFlight = true
        drive { transfer.head != nil }
        if let head = transfer.head {
            return Response(status: head.status, reason: head.reason, headers: head.headers, contentLength: head.announcedLength)
        }
        let error = failure()
        detach()
        throw error
    }

    /// Reads the next part of the current response's body; 0 once it is complete.
    public func readBody(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard inFlight else { return 0 }
        if transfer.unread == 0 {
            if transfer.paused {
                transfer.paused = false
                curl_easy_pause(easy, STRATA_CURLPAUSE_CONT)
            }
            drive { transfer.unread > 0 }
        }
        if transfer.unread > 0 { return transfer.take(into: buffer) }
        let error = transfer.result == CURLE_OK ? nil : failure()
        detach()
        if let error { throw error }
        return 0
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

    /// Runs the transfer until `ready` holds or it ends.
    private func drive(until ready: () -> Bool) {
        while !ready() && transfer.result == nil {
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                if message.pointee.msg == CURLMSG_DONE { transfer.result = message.pointee.data.result }
            }
            if ready() || transfer.result != nil { return }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    /// Ends the transfer in flight, if any; libcurl closes a connection left in the middle of a response.
    private func detach() {
        if inFlight { curl_multi_remove_handle(multi, easy) }
        inFlight = false
        curl_slist_free_all(requestFields)
        requestFields = nil
    }

    /// The error the ended transfer failed with, naming its URL and what was wrong.
    private func failure() -> NetworkError {
        let code = transfer.result ?? CURLE_OK
        let curl = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        let reason: String
        if let refusal = transfer.refusal {
            reason = refusal
        } else if code == CURLE_OK {
            reason = "no final answer"
        } else if code == CURLE_PARTIAL_FILE, let length = transfer.head?.announcedLength {
            reason = "the connection closed after \(transfer.received) of the \(length) bytes announced"
        } else if code == CURLE_OPERATION_TIMEDOUT {
            reason = "timed out (\(curl))"
        } else if code == CURLE_PEER_FAILED_VERIFICATION {
            reason = "the server's certificate is not trusted (\(curl)); refused"
        } else if code == CURLE_SSL_PINNEDPUBKEYNOTMATCH {
            reason = "the server's public key is not the one pinned (\(curl)); refused"
        } else {
            reason = curl
        }
        return NetworkError("\(transfer.url): \(reason)")
    }
}

/// The state of one request, shared with libcurl's callbacks: the head as it arrives, checked, and
/// the body waiting for the caller.
private final class Transfer {
    var url = ""
    var method = "GET"
    var range: RequestedRange?
    var limit = HTTPClient.bodyLimit
    /// The status of the head being read, once its status line is.
    private var status: (code: Int, reason: String)?
    private var fields = HTTPHeaders.Reader()
    /// The final response's head, once whole and checked.
    var head: ResponseHead?
    /// The trailer of a chunked body, bounded as a head is.
    private var trailer = HTTPHeaders.Reader()
    /// Why a callback stopped the transfer.
    var refusal: String?
    /// How the transfer ended, once it has.
    var result: CURLcode?
    /// Body bytes received, and those of them not yet taken by the caller.
    var received: Int64 = 0
    private var buffer: [UInt8] = []
    private var offset = 0
    /// Whether libcurl holds back body bytes until the caller has taken these.
    var paused = false
    /// Buffered bytes beyond which the transfer pauses.
    static let pauseThreshold = 1 << 20

    func begin(url: String, method: String, range: RequestedRange?, limit: Int64) {
        self.url = url
        self.method = method
        self.range = range
        self.limit = limit
        status = nil
        fields = HTTPHeaders.Reader()
        head = nil
        trailer = HTTPHeaders.Reader()
        refusal = nil
        result = nil
        received = 0
        buffer.removeAll(keepingCapacity: true)
        offset = 0
        paused = false
    }

    var unread: Int { buffer.count - offset }

    func take(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(destination.count, unread)
        buffer.withUnsafeBytes { destination.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
        offset += count
        if offset == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            offset = 0
        }
        return count
    }

    /// One line of a head or trailer, with its CR LF. False stops the transfer.
    func header(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var end = bytes.count
        if end > 0 && bytes[end - 1] == 0x0A { end -= 1 }
        if end > 0 && bytes[end - 1] == 0x0D { end -= 1 }
        let line = String(decoding: bytes[..<end], as: UTF8.self)
        do {
            if head != nil {
                _ = try trailer.take(line)
            } else if let status {
                guard try fields.take(line) else { return true }
                self.status = nil
                let headers = fields.headers
                fields = HTTPHeaders.Reader()
                // An interim answer, or a redirect libcurl follows: the final head comes after.
                if status.code < 200 || ([301, 302, 303, 307, 308].contains(status.code) && headers["Location"] != nil) { return true }
                head = try ResponseHead(method: method, status: status.code, reason: status.reason, headers: headers, range: range, limit: limit)
            } else {
                status = try ResponseHead.status(of: line)
            }
            return true
        } catch {
            refusal = "\(error)"
            return false
        }
    }

    /// Body bytes as they arrive: counted against the limit and kept for the caller, or held back
    /// (CURL_WRITEFUNC_PAUSE) while the caller has enough. Returns what libcurl expects.
    func body(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let head else {
            refusal = "a body without a final answer's head"
            return 0
        }
        if unread >= Self.pauseThreshold {
            paused = true
            return Int(CURL_WRITEFUNC_PAUSE)
        }
        received += Int64(bytes.count)
        guard received <= head.limit else {
            refusal = "the body is longer than the \(head.limit) bytes expected; refused"
            return 0
        }
        buffer.append(contentsOf: bytes)
        return bytes.count
    }
}

private let headerCallback: curl_write_callback = { data, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    return transfer.header(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
}

private let bodyCallback: curl_write_callback = { data, size, count, context in
    Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue().body(UnsafeRawBufferPointer(start: data, count: size * count))
}
