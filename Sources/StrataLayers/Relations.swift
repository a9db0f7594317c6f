/// A version relation of a dependency field.
public enum RelationOperator: String, Sendable {
    case lessThan = "<<", lessOrEqual = "<=", equal = "=", greaterOrEqual = ">=", greaterThan = ">>"

    /// Reads an operator as dpkg does, including the obsolete `<` (meaning `<=`) and `>` (meaning `>=`).
    public init?(token: String) {
        switch token {
        case "<": self = .lessOrEqual
        case ">": self = .greaterOrEqual
        default: self.init(rawValue: token)
        }
    }

    /// Whether `candidate` relates to `reference` by this operator, e.g. `>=` holds for 1.1 against 1.0.
    public func isSatisfied(by candidate: DebianVersion, comparedTo reference: DebianVersion) -> Bool {
        let order = DebianVersion.compare(candidate, reference)
        switch self {
        case .lessThan: return order < 0
        case .lessOrEqual: return order <= 0
        case .equal: return order == 0
        case .greaterOrEqual: return order >= 0
        case .greaterThan: return order > 0
        }
    }
}

/// The `(op version)` part of a relation.
public struct VersionConstraint: Hashable, Sendable, CustomStringConvertible {
    public var op: RelationOperator
    public var version: DebianVersion

    public init(_ op: RelationOperator, _ version: DebianVersion) {
        self.op = op
        self.version = version
    }

    public func isSatisfied(by candidate: DebianVersion) -> Bool {
        op.isSatisfied(by: candidate, comparedTo: version)
    }

    public var description: String { "\(op.rawValue) \(version)" }
}

/// One reference to a layer (or package) in a relation field: `name[:arch] [(op version)]`.
public struct Relation: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    /// The multiarch qualifier after `:` (`any`, `native`, or an architecture), if any.
    public var architecture: String?
    public var constraint: VersionConstraint?

    public init(name: String, architecture: String? = nil, constraint: VersionConstraint? = nil) {
        self.name = name
        self.architecture = architecture
        self.constraint = constraint
    }

    /// Canonical form: `name:arch (>= 1.0)`.
    public var description: String {
        var text = name
        if let architecture { text += ":\(architecture)" }
        if let constraint { text += " (\(constraint))" }
        return text
    }

    /// Parses a Depends-style field: a comma-separated list of `|`-separated alternatives.
    ///
    /// `line` is the line the field starts on (nil when the value did not come from a file, e.g. a
    /// command-line option); errors in later lines of a multi-line value name their own line.
    /// Architecture restrictions (`[amd64 !i386]`) and build profiles (`<!nocheck>`) are accepted and
    /// dropped. An empty value is an empty list; one trailing comma is allowed.
    public static func parseAlternatives(_ value: String, field: String = "Depends",
                                         file: String, line: Int?) throws -> [[Relation]] {
        var parser = RelationScanner(text: value, field: field, file: file, firstLine: line)
        return try parser.parseList(alternativesAllowed: true)
    }

    /// Parses a field that allows no alternatives, such as Conflicts, Breaks, Replaces or Provides.
    public static func parseList(_ value: String, field: String = "Conflicts",
                                 file: String, line: Int?) throws -> [Relation] {
        var parser = RelationScanner(text: value, field: field, file: file, firstLine: line)
        return try parser.parseList(alternativesAllowed: false).map { $0[0] }
    }

    /// Renders a Depends-style list canonically: `a (>= 1) | b, c`.
    static func render(_ alternatives: [[Relation]]) -> String {
        alternatives.map { $0.map(\.description).joined(separator: " | ") }.joined(separator: ", ")
    }
}

/// A hand-written scanner over one field value, following dpkg's `f_dependency`.
private struct RelationScanner {
    let chars: [Character]
    let field: String
    let file: String
    let firstLine: Int?
    var position = 0

    init(text: String, field: String, file: String, firstLine: Int?) {
        chars = Array(text)
        self.field = field
        self.file = file
        self.firstLine = firstLine
    }

    private var current: Character? { position < chars.count ? chars[position] : nil }

    private func error(_ message: String, at index: Int? = nil) -> ParseError {
        let upTo = min(index ?? position, chars.count)
        let newlines = chars[..<upTo].count(where: { $0 == "\n" || $0 == "\r\n" })
        return ParseError(file: file, line: firstLine.map { $0 + newlines }, message: "\(field): \(message)")
    }

    private mutating func skipSpace() {
        while let c = current, c.isWhitespace { position += 1 }
    }

    /// Reads up to (not including) whitespace or any of `stops`.
    private mutating func word(stoppingAt stops: String) -> String {
        let start = position
        while let c = current, !c.isWhitespace, !stops.contains(c) { position += 1 }
        return String(chars[start..<position])
    }

    mutating func parseList(alternativesAllowed: Bool) throws -> [[Relation]] {
        var list: [[Relation]] = []
        skipSpace()
        while current != nil {
            var alternatives = [try parseRelation()]
            while current == "|" {
                guard alternativesAllowed else {
                    throw error("alternatives ('|') are not allowed in \(field)")
                }
                position += 1
                alternatives.append(try parseRelation())
            }
            list.append(alternatives)
            guard let c = current else { break }
            guard c == "," else {
                throw error("expected ',' or '|' after '\(alternatives.last!)', found '\(c)'")
            }
            position += 1
            skipSpace()
        }
        return list
    }

    private mutating func parseRelation() throws -> Relation {
        skipSpace()
        let start = position
        let token = word(stoppingAt: "(),|[]<>")
        if token.isEmpty {
            let found = current.map { "'\($0)'" } ?? "end of field"
            throw error("expected a layer name, found \(found)")
        }
        var name = token
        var architecture: String?
        if let colon = token.firstIndex(of: ":") {
            name = String(token[..<colon])
            let arch = String(token[token.index(after: colon)...])
            guard !arch.isEmpty, arch.allSatisfy({ $0.isASCIIAlphanumeric || $0 == "-" }) else {
                throw error("invalid architecture qualifier in '\(token)'", at: start)
            }
            architecture = arch
        }
        if let problem = referenceNameProblem(name) {
            throw error("invalid name '\(name)': \(problem)", at: start)
        }
        var relation = Relation(name: name, architecture: architecture)
        skipSpace()
        // Debian orders these as (version) [archs] <profiles>, but tools accept them in any order.
        while let c = current, "([<".contains(c) {
            switch c {
            case "(":
                if relation.constraint != nil { throw error("second version constraint on '\(name)'") }
                relation.constraint = try parseConstraint(for: name)
            case "[":
                try skipGroup(closing: "]", what: "architecture restriction")
            default:
                try skipGroup(closing: ">", what: "build profile")
            }
            skipSpace()
        }
        return relation
    }

    private mutating func parseConstraint(for name: String) throws -> VersionConstraint {
        let open = position
        position += 1
        skipSpace()
        var opText = ""
        while let c = current, "<=>".contains(c) {
            opText.append(c)
            position += 1
        }
        // dpkg reads `(1.0)` without an operator as an exact match.
        let op: RelationOperator
        if opText.isEmpty {
            op = .equal
        } else if let known = RelationOperator(token: opText) {
            op = known
        } else {
            throw error("bad version relation '\(opText)' in the constraint on '\(name)'")
        }
        skipSpace()
        let versionStart = position
        let versionText = word(stoppingAt: "()")
        skipSpace()
        guard current == ")" else {
            if current == nil { throw error("unterminated '(' after '\(name)'", at: open) }
            throw error("expected ')' after version '\(versionText)' of '\(name)', found '\(current!)'")
        }
        position += 1
        if versionText.isEmpty { throw error("missing version after '\(opText)' for '\(name)'", at: versionStart) }
        do {
            return VersionConstraint(op, try DebianVersion(versionText))
        } catch let error as ParseError {
            throw self.error("'\(name)': \(error.message)", at: versionStart)
        }
    }

    private mutating func skipGroup(closing: Character, what: String) throws {
        let open = position
        while let c = current, c != closing { position += 1 }
        if current == nil { throw error("unterminated \(what)", at: open) }
        position += 1
    }
}

/// dpkg's rule for names in relations (start alphanumeric, then alphanumerics or `-+._`): looser than
/// the Policy rule for layer names, so that third-party packages naming odd packages still import.
private func referenceNameProblem(_ name: String) -> String? {
    guard let first = name.first, first.isASCIIAlphanumeric else {
        return "must start with a letter or digit"
    }
    if let bad = name.first(where: { !($0.isASCIIAlphanumeric || "-+._".contains($0)) }) {
        return "character '\(bad)' is not allowed"
    }
    return nil
}
