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

    /// Reads fields up to the blank line that ends a message head; a head is bounded in size.
    static func read(from socket: Socket) throws -> HTTPHeaders {
        var headers = HTTPHeaders()
        while let line = try socket.readLine() {
            if line.isEmpty { return headers }
            guard headers.fields.count < 100, let colon = line.firstIndex(of: ":") else {
                throw NetworkError("\(socket.peer) sent a malformed header line: '\(line.prefix(80))'")
            }
            headers.fields.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        throw NetworkError("\(socket.peer) closed the connection in the middle of a message head")
    }

    func serialized() -> String {
        fields.map { "\($0.name): \($0.value)\r\n" }.joined()
    }
}

/// Where a repository is served: `http://HOST[:PORT][/PATH]`.
public struct HTTPLocation: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// The path the repository's files are under, without a trailing slash ("" for the root).
    public let basePath: String

    /// Whether a repository location names a server rather than a local path.
    public static func isRemote(_ location: String) -> Bool {
        location.hasPrefix("http://") || location.hasPrefix("https://")
    }

    public init(_ url: String) throws {
        if url.hasPrefix("https://") {
            throw NetworkError("\(url): https is not supported yet; serve the repository over http (every object is checked against its digest)")
        }
        guard url.hasPrefix("http://") else { throw NetworkError("\(url): not an http:// URL") }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(authority.count))
        while path.hasSuffix("/") { path.removeLast() }
        var hostPart = Substring(authority)
        var port = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                throw NetworkError("\(url): invalid port")
            }
            port = number
            hostPart = authority[..<colon]
        }
        if hostPart.hasPrefix("[") && hostPart.hasSuffix("]") { hostPart = hostPart.dropFirst().dropLast() }
        guard !hostPart.isEmpty, !path.contains("?"), !path.contains("#") else { throw NetworkError("\(url): expected http://HOST[:PORT][/PATH]") }
        host = String(hostPart)
        self.port = port
        basePath = path
    }

    /// The request target for a file of the repository (`objects/sha256/ab/cd…`).
    public func target(_ relative: String) -> String { basePath + "/" + relative }

    /// The full URL of a file of the repository, for messages.
    public func url(_ relative: String) -> String { "http://\(authority)\(target(relative))" }

    var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? name : "\(name):\(port)"
    }

    public var description: String { "http://\(authority)\(basePath)" }
}
