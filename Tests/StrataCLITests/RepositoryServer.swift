import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Which program serves a repository in a test.
enum ServerKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case strata
    case nginx

    var testDescription: String { rawValue }
}

/// A repository directory served on 127.0.0.1 for the length of a test, by `strata repo serve` or by
/// nginx with a generated configuration; stopped when it goes away. Requests are logged to `log`.
final class RepositoryServer: @unchecked Sendable {
    let url: String
    let log: String
    private let process: Process

    /// - Parameters:
    ///   - rateLimit: bytes per second per connection, to make downloads slow enough to interrupt.
    ///   - tls: a certificate for nginx to serve https:// and HTTP/2 with.
    init(_ kind: ServerKind, serving repository: String, scratch: String, rateLimit: Int = 0, tls: TestCertificate? = nil) throws {
        precondition(tls == nil || kind == .nginx, "only nginx serves https")
        log = "\(scratch)/\(kind.rawValue)-access.log"
        process = Process()
        switch kind {
        case .strata:
            process.executableURL = URL(fileURLWithPath: strataExecutable)
            process.arguments = ["repo", "serve", repository, "--listen", "127.0.0.1:0", "--limit-rate", String(rateLimit)]
            let out = Pipe()
            process.standardOutput = out
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log)
            try process.run()
            let line = String(decoding: out.fileHandleForReading.availableDataUntilNewline(), as: UTF8.self)
            guard line.hasPrefix("http://") else { throw StoreError("strata repo serve printed '\(line)'") }
            url = line.trimmingCharacters(in: .whitespacesAndNewlines)
        case .nginx:
            let nginx = try nginxExecutable()
            let port = try freePort()
            let configuration = """
                daemon off;
                master_process off;
                user root;
                pid \(scratch)/nginx.pid;
                error_log \(scratch)/nginx-error.log;
                events {}
                http {
                    access_log \(log);
                    client_body_temp_path \(scratch)/nginx-body;
                    proxy_temp_path \(scratch)/nginx-proxy;
                    fastcgi_temp_path \(scratch)/nginx-fastcgi;
                    uwsgi_temp_path \(scratch)/nginx-uwsgi;
                    scgi_temp_path \(scratch)/nginx-scgi;
                    server {
                        listen 127.0.0.1:\(port)\(tls == nil ? "" : " ssl http2");
                        \(tls.map { "ssl_certificate \($0.certificate); ssl_certificate_key \($0.key);" } ?? "")
                        root \(repository);
                        limit_rate \(rateLimit);
                        # The repository again under /moved/, by redirect.
                        rewrite ^/moved/(.*)$ /$1 permanent;
                    }
                }
                """
            try AtomicFile.write(configuration, to: "\(scratch)/nginx.conf")
            process.executableURL = URL(fileURLWithPath: nginx)
            process.arguments = ["-p", scratch, "-e", "\(scratch)/nginx-error.log", "-c", "\(scratch)/nginx.conf"]
            try process.run()
            url = "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)"
            try waitUntilListening(port: port)
        }
    }

    deinit { stop() }

    /// Stops serving (the server is gone, as if the network were).
    func stop() {
        // SIGKILL: the test runner's threads block the other signals, and children inherit the mask.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The request lines logged so far.
    func requests() -> [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

extension FileHandle {
    /// Bytes up to and including the first newline (the URL `strata repo serve` prints first).
    func availableDataUntilNewline() -> Data {
        var data = Data()
        while let byte = try? read(upToCount: 1), !byte.isEmpty {
            data.append(byte)
            if byte.first == 0x0A { break }
        }
        return data
    }
}

/// A certificate authority made for a test, and a certificate it signed for 127.0.0.1 and localhost.
struct TestCertificate: Sendable, Equatable {
    /// The authority's certificate, to trust.
    let authority: String
    let certificate: String
    let key: String

    init(in directory: String, name: String = "server") throws {
        authority = "\(directory)/\(name)-ca.pem"
        certificate = "\(directory)/\(name).pem"
        key = "\(directory)/\(name).key"
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        _ = try shell("""
            cd \(directory) && openssl req -x509 \(ec) -keyout \(name)-ca.key -out \(name)-ca.pem -days 2 -subj '/CN=Strata test CA \(name)' 2>&1 \
            && openssl req \(ec) -keyout \(name).key -out \(name).csr -subj '/CN=127.0.0.1' 2>&1 \
            && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > \(name).ext \
            && openssl x509 -req -in \(name).csr -CA \(name)-ca.pem -CAkey \(name)-ca.key -CAcreateserial -out \(name).pem -days 2 -extfile \(name).ext 2>&1
            """)
    }
}

/// The installed nginx, or else Debian's nginx unpacked (not installed: that would start a system
/// service) from `apt-get download nginx` into a cache that survives between runs.
func nginxExecutable() throws -> String {
    if FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") { return "/usr/sbin/nginx" }
    let cache = "/tmp/strata-test-nginx"
    if !FileManager.default.isExecutableFile(atPath: cache + "/usr/sbin/nginx") {
        try makeDirectories(cache + "/debs")
        try shell("cd \(cache)/debs && chmod 777 . && apt-get download -q nginx >/dev/null 2>&1 && dpkg -x nginx_*.deb \(cache)")
    }
    return cache + "/usr/sbin/nginx"
}

/// A port nothing listens on right now, from the kernel.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw SystemError("bind", "127.0.0.1:0") }
    return Int(UInt16(bigEndian: address.sin_port))
}

func waitUntilListening(port: Int) throws {
    for _ in 0..<100 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        close(fd)
        if connected { return }
        usleep(50_000)
    }
    throw StoreError("nothing listens on 127.0.0.1:\(port) after 5 s")
}
