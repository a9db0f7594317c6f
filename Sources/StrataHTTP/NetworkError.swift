/// A failed request or an answer refused, naming the URL and what went wrong.
public struct NetworkError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
