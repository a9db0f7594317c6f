// http-mirror: fetches the objects of a served Strata repository the way Strata's ObjectFetcher does
// (up to N transfers at once, each body SHA-256-hashed as it streams and written to a file, nothing
// fsynced, each digest checked against the object's path), with one of two HTTP clients:
//
//   ahc   AsyncHTTPClient (SwiftNIO): one shared client, N requests in flight from a task group;
//         HTTP/2 over TLS when the server offers it (then one connection carries all N streams)
//   curl  libcurl: N threads, each with one blocking easy handle reused for its objects (a connection
//         each), HTTP/2 over TLS when offered — the shape of Strata's fetcher
//
// Usage: http-mirror --client ahc|curl [--connections N] [--cacert FILE] [--out DIR] BASE_URL OBJECT_LIST
// OBJECT_LIST holds one relative path a line (objects/sha256/ab/cdef...). The CA file defaults to
// CURL_CA_BUNDLE, else SSL_CERT_FILE, else the system's store. Prints "objects N bytes B ms T".
import AsyncHTTPClient
import CCurl
import Crypto
import Foundation
import NIOCore
import NIOSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct Options {
    var client = ""
    var connections = 4
    var caFile: String? = [ProcessInfo.processInfo.environment["CURL_CA_BUNDLE"],
                           ProcessInfo.processInfo.environment["SSL_CERT_FILE"]].compactMap { $0 }.first { !$0.isEmpty }
    var out = "http-mirror-out"
    var base = ""
    var paths: [String] = []

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var positional: [String] = []
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw Failure("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--client": options.client = try value()
            case "--connections": options.connections = Int(try value()) ?? 0
            case "--cacert": options.caFile = try value()
            case "--out": options.out = try value()
            default: positional.append(arguments[i])
            }
            i += 1
        }
        guard ["ahc", "curl"].contains(options.client), positional.count == 2, options.connections > 0 else {
            throw Failure("usage: http-mirror --client ahc|curl [--connections N] [--cacert FILE] [--out DIR] BASE_URL OBJECT_LIST")
        }
        options.base = positional[0].hasSuffix("/") ? String(positional[0].dropLast()) : positional[0]
        options.paths = try String(contentsOfFile: positional[1], encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        return options
    }
}

/// One object being received: its file, its running hash, its byte count.
final class Sink {
    let path: String
    let relative: String
    let fd: Int32
    var hasher = SHA256()
    var bytes = 0
    var failed: String?

    init(relative: String, to path: String) throws {
        self.relative = relative
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw Failure("\(path): \(String(cString: strerror(errno)))") }
    }

    func append(_ chunk: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: chunk)
        var done = 0
        while done < chunk.count {
            let n = write(fd, chunk.baseAddress! + done, chunk.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                failed = "\(path): write: \(String(cString: strerror(errno)))"
                return
            }
            done += n
        }
        bytes += chunk.count
    }

    /// Closes the file and checks the content against the digest the path names.
    func finish() throws -> Int {
        close(fd)
        if let failed { throw Failure(failed) }
        let expected = relative.split(separator: "/").suffix(2).joined()
        let actual = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        guard actual == expected else { throw Failure("\(relative): content hashes to \(actual)") }
        return bytes
    }
}

// MARK: AsyncHTTPClient

func mirrorWithAsyncHTTPClient(_ options: Options) async throws -> Int {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let caFile = options.caFile { tls.trustRoots = .file(caFile) }
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.httpVersion = .automatic                   // HTTP/2 when ALPN offers it
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = options.connections
    configuration.decompression = .disabled
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    do {
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            var next = 0
            func fetch(_ index: Int) {
                let relative = options.paths[index]
                group.addTask {
                    let sink = try Sink(relative: relative, to: "\(options.out)/\(index)")
                    let request = HTTPClientRequest(url: "\(options.base)/\(relative)")
                    let response = try await client.execute(request, timeout: .seconds(300))
                    guard response.status == .ok else { close(sink.fd); throw Failure("\(relative): \(response.status)") }
                    for try await buffer in response.body {
                        buffer.withUnsafeReadableBytes { sink.append($0) }
                    }
                    return try sink.finish()
                }
            }
            while next < min(options.connections, options.paths.count) { fetch(next); next += 1 }
            var total = 0
            while let bytes = try await group.next() {
                total += bytes
                if next < options.paths.count { fetch(next); next += 1 }
            }
            return total
        }
        try await client.shutdown()
        return total
    } catch {
        try? await client.shutdown()
        throw error
    }
}

// MARK: libcurl

/// libcurl's write callback: hand the chunk to the Sink.
let writeCallback: curl_write_callback = { data, size, count, context in
    let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
    let length = size * count
    sink.append(UnsafeRawBufferPointer(start: data, count: length))
    return sink.failed == nil ? length : 0
}

func mirrorWithCurl(_ options: Options) throws -> Int {
    guard curl_global_init(STRATA_CURL_GLOBAL_ALL) == CURLE_OK else { throw Failure("curl_global_init failed") }
    let shared = Shared()
    let workers = (0..<min(options.connections, options.paths.count)).map { _ in
        Worker {
            guard let easy = curl_easy_init() else { shared.firstError.withLock { $0 = $0 ?? "curl_easy_init failed" }; return }
            defer { curl_easy_cleanup(easy) }
            let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
            defer { errorBuffer.deallocate() }
            _ = strata_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
            _ = strata_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
            _ = strata_curl_setopt_write_function(easy, CURLOPT_WRITEFUNCTION, writeCallback)
            _ = strata_curl_setopt_long(easy, CURLOPT_HTTP_VERSION, STRATA_CURL_HTTP_VERSION_2TLS)
            _ = strata_curl_setopt_long(easy, CURLOPT_BUFFERSIZE, 256 * 1024)
            _ = strata_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
            if let caFile = options.caFile { _ = strata_curl_setopt_string(easy, CURLOPT_CAINFO, caFile) }
            while shared.firstError.withLock({ $0 == nil }) {
                let index = shared.next.add(1, ordering: .relaxed).oldValue
                if index >= options.paths.count { break }
                let relative = options.paths[index]
                do {
                    let sink = try Sink(relative: relative, to: "\(options.out)/\(index)")
                    let context = Unmanaged.passUnretained(sink).toOpaque()
                    _ = strata_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
                    _ = strata_curl_setopt_string(easy, CURLOPT_URL, "\(options.base)/\(relative)")
                    let code = curl_easy_perform(easy)
                    var status = 0
                    _ = strata_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
                    guard code == CURLE_OK else { close(sink.fd); throw Failure("\(relative): \(String(cString: errorBuffer))") }
                    guard status == 200 else { close(sink.fd); throw Failure("\(relative): HTTP \(status)") }
                    shared.total.add(try withExtendedLifetime(sink) { try sink.finish() }, ordering: .relaxed)
                } catch {
                    shared.firstError.withLock { $0 = $0 ?? "\(error)" }
                }
            }
        }
    }
    let finished = DispatchGroup()
    for worker in workers {
        finished.enter()
        let body = worker
        Thread { body.run(); finished.leave() }.start()
    }
    finished.wait()
    if let error = shared.firstError.withLock({ $0 }) { throw Failure(error) }
    return shared.total.load(ordering: .relaxed)
}

/// What the libcurl threads share: the next object to fetch, the bytes received, the first error.
final class Shared: Sendable {
    let next = Atomic<Int>(0)
    let total = Atomic<Int>(0)
    let firstError = Mutex<String?>(nil)
}

/// A body to run on its own thread.
struct Worker: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

// MARK: main

do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    try FileManager.default.createDirectory(atPath: options.out, withIntermediateDirectories: true)
    let start = DispatchTime.now().uptimeNanoseconds
    let bytes: Int
    if options.client == "ahc" {
        bytes = try await mirrorWithAsyncHTTPClient(options)
    } else {
        bytes = try mirrorWithCurl(options)
    }
    let ms = (DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
    print("objects \(options.paths.count) bytes \(bytes) ms \(ms)")
} catch {
    FileHandle.standardError.write(Data("http-mirror: \(error)\n".utf8))
    exit(1)
}
