/// One byte range a client asks for, `Range: bytes=FIRST-[LAST]`, and the check that a partial
/// answer (206) is that range: a server that answers another part must not have it taken for the
/// one asked for.
public struct RequestedRange: Sendable, Equatable {
    public let first: Int64
    /// The last byte wanted; nil for everything from `first` on.
    public let last: Int64?

    public init(from first: Int64, through last: Int64? = nil) {
        self.first = first
        self.last = last
    }

    /// `FIRST-[LAST]`, as libcurl's CURLOPT_RANGE takes it for `Range: bytes=FIRST-[LAST]`.
    var specification: String { "\(first)-\(last.map(String.init) ?? "")" }

    /// The length of the part a 206 answer's `Content-Range` (`bytes FIRST-LAST/TOTAL`, the total
    /// possibly `*`) says it holds, if that part starts where asked and ends no later.
    func partLength(answeredBy contentRange: String?) throws -> Int64 {
        guard let contentRange else { throw NetworkError("a partial answer without a Content-Range") }
        let refusal = NetworkError("Content-Range '\(contentRange.prefix(80))' does not answer the range asked for, bytes=\(specification)")
        guard contentRange.hasPrefix("bytes ") else { throw refusal }
        let spec = contentRange.dropFirst("bytes ".count).split(separator: "/", omittingEmptySubsequences: false)
        let bounds = spec.first?.split(separator: "-", omittingEmptySubsequences: false) ?? []
        guard spec.count == 2, bounds.count == 2, let start = Int64(decimal: bounds[0]), let end = Int64(decimal: bounds[1]),
              start == first, end >= start, end <= last ?? end, end < .max else { throw refusal }
        if spec[1] != "*" {
            guard let total = Int64(decimal: spec[1]), end < total else { throw refusal }
        }
        return end - start + 1
    }
}

extension Int64 {
    /// A count as HTTP writes it: decimal digits only, no sign, no space, and not past `Int64.max`.
    init?(decimal text: Substring) {
        guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let value = Int64(text) else { return nil }
        self = value
    }
}
