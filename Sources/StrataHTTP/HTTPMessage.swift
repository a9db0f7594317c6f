import Foundation

/// Header fields of a request or response; names compare without regard to case.
public struct HTTPHeaders: Sendable {
    public private(set) var fields: [(name: String, value: String)] = []

    public init(_ fields: [(name: String, value: String)] = []) {
        self.fields = fields
    }

    public subscript(name: String) -> String? {
        fields.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// The most a message head's fields may take, in bytes and in lines: a peer must not make us
    /// buffer without end or spin through a flood of fields.
    static let maximumBytes = 64 * 1024
    static let maximumFields = 100

    /// Takes the lines of a message head (or a chunked body's trailer) one at a time, within bounds.
    struct Reader {
        private(set) var headers = HTTPHeaders()
        /// What the head may still take, in bytes.
        private(set) var budget = maximumBytes

        /// Takes one line without its CR LF; true for the blank line that ends the head.
        mutating func take(_ line: String) throws -> Bool {
            if line.isEmpty { return true }
            guard line.utf8.count <= budget else { throw NetworkError("a message head larger than \(maximumBytes) bytes; refused") }
            budget -= line.utf8.count
            guard headers.fields.count < maximumFields else { throw NetworkError("more than \(maximumFields) header lines; refused") }
            // No space before the colon, no folded continuation line: RFC 9112 has them refused, as
            // two parties could read them differently.
            guard let colon = line.firstIndex(of: ":"), colon > line.startIndex, !line[..<colon].contains(where: \.isWhitespace) else {
                throw NetworkError("malformed header line: '\(line.prefix(80))'")
            }
            headers.fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            return false
        }
    }

    /// Every value of a field, those of repeated lines and those of comma-separated lists alike.
    func values(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }
            .flatMap { $0.value.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// Where a repository is served: `http[s]://HOST[:PORT][/PATH]`.
public struct HTTPLocation: Sendable, Hashable, CustomStringConvertible {
    /// `http` or `https`.
    public let scheme: String
    public let host: String
    public let port: Int
    /// The path the repository's files are under, without a trailing slash ("" for the root).
    public let basePath: String

    /// Whether a repository location names a server rather than a local path.
    public static func isRemote(_ location: String) -> Bool {
        location.hasPrefix("http://") || location.hasPrefix("https://")
    }

    public init(_ url: String) throws {
        guard let scheme = ["http", "https"].first(where: { url.hasPrefix($0 + "://") }) else {
            throw NetworkError("\(url): not an http:// or https:// URL")
        }
        let rest = url.dropFirst(scheme.count + "://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        var hostPart = Substring(authority)
        var port = scheme == "https" ? 443 : 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                throw NetworkError("\(url): invalid port")
            }
            port = number
            hostPart = authority[..<colon]
        }
        if hostPart.hasPrefix("[") && hostPart.hasSuffix("]") { hostPart = hostPart.dropFirst().dropLast() }
        guard !hostPart.isEmpty, !hostPart.contains("@"), !path.contains("?"), !path.contains("#") else {
            throw NetworkError("\(url): expected \(scheme)://HOST[:PORT][/PATH]")
        }
        self.scheme = scheme
        host = String(hostPart)
        self.port = port
        basePath = path
    }

    /// The request target for a file of the repository (`objects/sha256/ab/cd…`).
    public func target(_ relative: String) -> String { basePath + "/" + relative }

    /// The full URL of a file of the repository, for messages.
    public func url(_ relative: String) -> String { "\(scheme)://\(authority)\(target(relative))" }

    /// The URL a request for a file of the repository goes to: its target escaped, keeping '/'; a
    /// query (`boot?mac=…`, the boot service's per-machine answer) is escaped as a query.
    func requestURL(_ relative: String) -> String {
        let (path, query) = relative.firstIndex(of: "?").map { (String(relative[..<$0]), String(relative[relative.index(after: $0)...])) } ?? (relative, nil)
        let target = target(path)
        let escaped = target.addingPercentEncoding(withAllowedCharacters: CharacterSet.urlPathAllowed) ?? target
        return "\(scheme)://\(authority)\(escaped)" + (query.map { "?" + ($0.addingPercentEncoding(withAllowedCharacters: CharacterSet.urlQueryAllowed) ?? $0) } ?? "")
    }

    var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (scheme == "https" ? 443 : 80) ? name : "\(name):\(port)"
    }

    public var description: String { "\(scheme)://\(authority)\(basePath)" }
}
