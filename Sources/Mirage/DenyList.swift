import Foundation
import StrataStore

/// Content digests that must not appear in any image (known malware, leaked keys, banned builds).
/// The file holds one `sha256:<hex> [reason]` a line; blank lines and `#` comments are ignored.
public struct DenyList: Sendable {
    private var reasons: [Digest: String] = [:]

    public init() {}

    public init(file: String) throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CatalogError("\(file): cannot read the deny list") }
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(maxSplits: 1, whereSeparator: \.isWhitespace)
            guard let digest = Digest(fields[0]) else {
                throw CatalogError("\(file):\(index + 1): expected a digest (sha256:<64 hex digits>), found '\(fields[0])'")
            }
            reasons[digest] = fields.count > 1 ? String(fields[1]).trimmingCharacters(in: .whitespaces) : ""
        }
    }

    public init(_ reasons: [Digest: String]) { self.reasons = reasons }

    public var count: Int { reasons.count }

    /// Why the content is denied ("" when the list gives no reason), or nil when it is not.
    public func reason(for digest: Digest) -> String? { reasons[digest] }
}
