import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// What each request target leads to: exact routes (files and handlers), then directories by the
/// longest prefix.
struct Routes: Sendable {
    enum Route: Sendable {
        case file(ServedFile)
        case handler(@Sendable (ServedRequest) async throws -> ServedResponse)
    }

    private var exact: [String: Route] = [:]
    /// Longest prefix first, so `/repos/main/` is tried before `/`.
    private var directories: [(prefix: String, directory: ServedDirectory)] = []

    mutating func addDirectory(_ directory: ServedDirectory, at prefix: String) throws {
        var prefix = try Self.checked(prefix)
        if !prefix.hasSuffix("/") { prefix += "/" }
        guard !directories.contains(where: { $0.prefix == prefix }) else { throw ServerError("\(prefix): a directory is served there already") }
        directories.append((prefix, directory))
        directories.sort { $0.prefix.count > $1.prefix.count }
    }

    mutating func addFile(_ file: ServedFile, at route: String) throws {
        try add(.file(file), at: route)
    }

    mutating func addHandler(_ handler: @escaping @Sendable (ServedRequest) async throws -> ServedResponse, at route: String) throws {
        try add(.handler(handler), at: route)
    }

    private mutating func add(_ route: Route, at path: String) throws {
        let path = try Self.checked(path)
        guard exact[path] == nil else { throw ServerError("\(path): routed already") }
        exact[path] = route
    }

    /// A route as given by the program: absolute, without `..`.
    private static func checked(_ path: String) throws -> String {
        guard path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
            throw ServerError("'\(path)': a route is an absolute path without '..'")
        }
        return path
    }

    func route(_ path: String) -> Route? { exact[path] }

    /// The directory serving `path`, and the path of the file beneath it ("" for the directory itself).
    func directory(serving path: String) -> (ServedDirectory, String)? {
        guard let match = directories.first(where: { path.hasPrefix($0.prefix) || path + "/" == $0.prefix }) else { return nil }
        let rest = path.dropFirst(min(match.prefix.count, path.count))
        return (match.directory, rest.split(separator: "/").filter { $0 != "." }.joined(separator: "/"))
    }
}

/// Answers every request the RequestGuard let through (a GET or HEAD without a body) from the routes,
/// and logs it.
struct Responder: HTTPResponder {
    typealias Context = BasicRequestContext
    let routes: Routes
    let rateLimit: Int
    let logger: Logger

    func respond(to request: Request, context: Context) async throws -> Response {
        let response = await answer(request)
        logger.info("\(request.method.rawValue) \(request.head.path ?? "") \(response.status.code)")
        return request.method == .head ? Response(status: response.status, headers: response.headers) : response
    }

    private func answer(_ request: Request) async -> Response {
        guard let path = Self.decodedPath(request.head.path) else { return .refusal(.badRequest) }
        switch routes.route(path) {
        case .file(let file):
            return file.response(to: request, rateLimit: rateLimit)
        case .handler(let handler):
            do {
                return try await handler(ServedRequest(request, path: path)).response()
            } catch {
                logger.error("\(request.method.rawValue) \(path): \(error)")
                return .refusal(.internalServerError)
            }
        case nil:
            guard let (directory, relative) = routes.directory(serving: path) else { return .refusal(.notFound) }
            return directory.response(to: request, file: relative, rateLimit: rateLimit)
        }
    }

    /// The path of a request target, percent-decoded, without its query; nil (400) when it is not
    /// absolute, does not decode, holds a NUL or has a `..` segment (before or after decoding).
    static func decodedPath(_ target: String?) -> String? {
        guard let raw = target?.prefix(while: { $0 != "?" && $0 != "#" }), raw.hasPrefix("/"),
              let decoded = raw.removingPercentEncoding, !decoded.contains("\0"),
              !decoded.split(separator: "/").contains("..") else { return nil }
        return decoded
    }
}

extension Response {
    /// A refusal with its status as a short text body.
    static func refusal(_ status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "text/plain"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "\(status.code) \(status.reasonPhrase)\n")))
    }
}
