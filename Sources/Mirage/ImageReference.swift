import StrataStore

/// How a verb names an image version: `NAME` (its default version), `NAME@N` (version N),
/// `NAME@TAG`, or the image digest (its serial number).
public enum ImageReference: Hashable, Sendable, CustomStringConvertible {
    case digest(Digest)
    case defaultVersion(String)
    case version(String, Int)
    case tag(String, String)

    public init(parsing text: String) throws {
        if let digest = Digest(text) {
            self = .digest(digest)
            return
        }
        let parts = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        try ImageReference.checkName(parts[0], what: "image name", in: text)
        guard parts.count == 2 else {
            self = .defaultVersion(parts[0])
            return
        }
        if let number = Int(parts[1]), number > 0 {
            self = .version(parts[0], number)
        } else {
            try ImageReference.checkName(parts[1], what: "tag", in: text)
            self = .tag(parts[0], parts[1])
        }
    }

    /// The named image this reference is inside, if it names one.
    public var name: String? {
        switch self {
        case .digest: nil
        case .defaultVersion(let name), .version(let name, _), .tag(let name, _): name
        }
    }

    public var description: String {
        switch self {
        case .digest(let digest): digest.description
        case .defaultVersion(let name): name
        case .version(let name, let number): "\(name)@\(number)"
        case .tag(let name, let tag): "\(name)@\(tag)"
        }
    }

    /// Image names and tags: letters, digits, '-', '_', '.', starting with a letter or digit. A tag that
    /// is all digits would read as a version number, so tags need a letter.
    static func checkName(_ name: String, what: String, in text: String? = nil) throws {
        let valid = !name.isEmpty && name.utf8.count <= 128 && name.first!.isASCII && (name.first!.isLetter || name.first!.isNumber)
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        let context = text.map { " in '\($0)'" } ?? ""
        guard valid else { throw CatalogError("invalid \(what) '\(name)'\(context): use letters, digits, '-', '_' and '.', starting with a letter or digit") }
        if what == "tag" && name.allSatisfy(\.isNumber) { throw CatalogError("invalid tag '\(name)'\(context): a tag needs a letter (digits alone name a version)") }
    }
}
