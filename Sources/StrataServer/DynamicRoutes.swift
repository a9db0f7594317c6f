import HTTPTypes
import Hummingbird

/// A GET or HEAD request, as a route added with `HTTPServer.get` sees it.
public struct ServedRequest: Sendable {
    /// `GET` or `HEAD`.
    public let method: String
    /// The target's path, percent-decoded.
    public let path: String
    /// What follows `?` in the target, as sent ("" when nothing does).
    public let query: String
    private let fields: HTTPFields

    init(_ request: Request, path: String) {
        method = request.method.rawValue
        self.path = path
        let target = request.head.path ?? ""
        query = target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) } ?? ""
        fields = request.headers
    }

    /// A header field's value (repeated fields joined with ", "); nil when it was not sent.
    public func header(_ name: String) -> String? {
        HTTPField.Name(name).flatMap { fields[$0] }
    }

    /// Whether the `Accept` field admits `mediaType` (`type/subtype`): named, or by `type/*` or
    /// `*/*`, with a quality above 0. A request without `Accept` admits everything.
    public func accepts(_ mediaType: String) -> Bool {
        guard let accept = header("Accept") else { return true }
        let wanted = mediaType.lowercased()
        let type = wanted.prefix { $0 != "/" }
        return accept.split(separator: ",").contains { item in
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let range = parts.first, range == wanted || range == "\(type)/*" || range == "*/*" else { return false }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return quality > 0
        }
    }
}

/// What a route added with `HTTPServer.get` answers: the whole body, with its type.
public struct ServedResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// More header fields (`Cache-Control`, `Vary`…); Content-Type and Content-Length are set from the above.
    public var headers: [(name: String, value: String)]

    public init(status: Int = 200, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int = 200, contentType: String, text: String, headers: [(name: String, value: String)] = []) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8), headers: headers)
    }

    func response() throws -> Response {
        guard (200...599).contains(status) else { throw ServerError("status \(status) is not a final HTTP status") }
        var fields = HTTPFields()
        for (name, value) in headers {
            guard let field = HTTPField.Name(name) else { throw ServerError("'\(name)' is not a header field name") }
            fields.append(HTTPField(name: field, value: value))
        }
        fields[.contentType] = contentType
        return Response(status: HTTPResponse.Status(code: status, reasonPhrase: Self.reason(status)), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 406: "Not Acceptable"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: ""
        }
    }
}
