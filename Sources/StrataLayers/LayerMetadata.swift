/// A metadata field Strata does not interpret, kept so that nothing in an imported control file is lost.
public struct MetadataField: Hashable, Sendable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// The `metadata` file of a layer unit (DESIGN §4), or the control file of a `.deb` being imported.
public struct LayerMetadata: Hashable, Sendable {
    public var name: String
    public var version: DebianVersion
    public var architecture: String
    public var depends: [[Relation]]
    public var preDepends: [[Relation]]
    public var conflicts: [Relation]
    public var breaks: [Relation]
    public var replaces: [Relation]
    public var provides: [Relation]
    /// The synopsis, then the extended description's lines (empty lines for ` .`), joined by `\n`.
    public var description: String?
    public var essential: Bool
    public var multiArch: String?
    /// Every other field, in file order (e.g. Maintainer, Recommends, Installed-Size from a `.deb`).
    public var extraFields: [MetadataField]

    /// Builds metadata in code, e.g. for a directory imported with metadata given on the command line.
    /// Throws if the name, architecture, Multi-Arch value or an extra field is invalid.
    public init(name: String, version: DebianVersion, architecture: String = "all",
                depends: [[Relation]] = [], preDepends: [[Relation]] = [],
                conflicts: [Relation] = [], breaks: [Relation] = [], replaces: [Relation] = [],
                provides: [Relation] = [], description: String? = nil, essential: Bool = false,
                multiArch: String? = nil, extraFields: [MetadataField] = []) throws {
        try Self.check(layerNameProblem(name).map { "invalid layer name '\(name)': \($0)" })
        try Self.check(Self.architectureProblem(architecture))
        if let multiArch { try Self.check(Self.multiArchProblem(multiArch)) }
        var seen: Set<String> = []
        for field in extraFields {
            let key = field.name.lowercased()
            if Self.knownFields.contains(key) {
                try Self.check("field '\(field.name)' has its own property and cannot be an extra field")
            }
            if field.name.isEmpty || field.name.hasPrefix("#") || field.name.hasPrefix("-")
                || field.name.contains(where: { $0 == ":" || $0.isWhitespace }) {
                try Self.check("invalid field name '\(field.name)'")
            }
            if !seen.insert(key).inserted { try Self.check("duplicate field '\(field.name)'") }
        }
        self.name = name
        self.version = version
        self.architecture = architecture
        self.depends = depends
        self.preDepends = preDepends
        self.conflicts = conflicts
        self.breaks = breaks
        self.replaces = replaces
        self.provides = provides
        self.description = description
        self.essential = essential
        self.multiArch = multiArch
        self.extraFields = extraFields
    }

    /// Parses a Strata metadata file (`Layer:`) or a Debian binary control file (`Package:`).
    /// When both are present, `Layer` names the layer and `Package` is kept as an extra field.
    public init(parsing text: String, file: String) throws {
        let stanzas = try ControlFile.parse(text, file: file)
        guard let stanza = stanzas.first else {
            throw ParseError(file: file, line: nil, message: "no fields: expected 'Layer: NAME' and 'Version: VERSION'")
        }
        if stanzas.count > 1 {
            throw ParseError(file: file, line: stanzas[1].line,
                             message: "expected a single stanza, found a second one (blank lines end a stanza)")
        }
        let hasLayer = stanza["Layer"] != nil

        var name: String?
        var version: DebianVersion?
        var architecture = "all"
        var depends: [[Relation]] = [], preDepends: [[Relation]] = []
        var conflicts: [Relation] = [], breaks: [Relation] = [], replaces: [Relation] = [], provides: [Relation] = []
        var description: String?
        var essential = false
        var multiArch: String?
        var extraFields: [MetadataField] = []

        for (fieldName, value, line) in stanza.fields {
            func fail(_ message: String) -> ParseError {
                ParseError(file: file, line: line, message: message)
            }
            var key = fieldName.lowercased()
            // A Package field beside a Layer field is only an extra field.
            if key == "package" && !hasLayer { key = "layer" }
            switch key {
            case "layer":
                if let problem = layerNameProblem(value) {
                    throw fail("invalid layer name '\(value)': \(problem)")
                }
                name = value
            case "version":
                do { version = try DebianVersion(value) } catch let error as ParseError {
                    throw error.located(file: file, line: line)
                }
            case "architecture":
                if let problem = Self.architectureProblem(value) { throw fail(problem) }
                architecture = value
            case "depends":
                depends = try Relation.parseAlternatives(value, field: fieldName, file: file, line: line)
            case "pre-depends":
                preDepends = try Relation.parseAlternatives(value, field: fieldName, file: file, line: line)
            case "conflicts":
                conflicts = try Relation.parseList(value, field: fieldName, file: file, line: line)
            case "breaks":
                breaks = try Relation.parseList(value, field: fieldName, file: file, line: line)
            case "replaces":
                replaces = try Relation.parseList(value, field: fieldName, file: file, line: line)
            case "provides":
                provides = try Relation.parseList(value, field: fieldName, file: file, line: line)
            case "description":
                description = value
            case "essential":
                switch value.lowercased() {
                case "yes": essential = true
                case "no": essential = false
                default: throw fail("Essential must be 'yes' or 'no', found '\(value)'")
                }
            case "multi-arch":
                if let problem = Self.multiArchProblem(value) { throw fail(problem) }
                multiArch = value.lowercased()
            default:
                extraFields.append(MetadataField(fieldName, value))
            }
        }
        guard let name else {
            throw ParseError(file: file, line: stanza.line,
                             message: "missing 'Layer' field (or 'Package', in a Debian control file)")
        }
        guard let version else {
            throw ParseError(file: file, line: stanza.line, message: "missing 'Version' field")
        }
        // Every field was checked above with its line; the memberwise initializer's checks pass again.
        try self.init(name: name, version: version, architecture: architecture, depends: depends, preDepends: preDepends,
                      conflicts: conflicts, breaks: breaks, replaces: replaces, provides: provides, description: description,
                      essential: essential, multiArch: multiArch, extraFields: extraFields)
    }

    /// The canonical metadata file: Layer, Version, Architecture, the relation fields in a fixed order,
    /// Essential and Multi-Arch, the extra fields in their order, and Description last (as Debian does).
    public var controlText: String {
        var text = ControlFile.render(name: "Layer", value: name)
        text += ControlFile.render(name: "Version", value: version.description)
        text += ControlFile.render(name: "Architecture", value: architecture)
        let relations: [(String, String)] = [
            ("Depends", Relation.render(depends)),
            ("Pre-Depends", Relation.render(preDepends)),
            ("Conflicts", Relation.render(conflicts.map { [$0] })),
            ("Breaks", Relation.render(breaks.map { [$0] })),
            ("Replaces", Relation.render(replaces.map { [$0] })),
            ("Provides", Relation.render(provides.map { [$0] })),
        ]
        for (field, value) in relations where !value.isEmpty {
            text += ControlFile.render(name: field, value: value)
        }
        if essential { text += ControlFile.render(name: "Essential", value: "yes") }
        if let multiArch { text += ControlFile.render(name: "Multi-Arch", value: multiArch) }
        for field in extraFields { text += ControlFile.render(name: field.name, value: field.value) }
        if let description { text += ControlFile.render(name: "Description", value: description) }
        return text
    }

    private static let knownFields: Set<String> = [
        "layer", "version", "architecture", "depends", "pre-depends", "conflicts", "breaks", "replaces",
        "provides", "description", "essential", "multi-arch",
    ]

    private static func check(_ problem: String?) throws {
        if let problem { throw ParseError(file: "", line: nil, message: problem) }
    }

    private static func architectureProblem(_ value: String) -> String? {
        let valid = !value.isEmpty && value.allSatisfy { $0.isASCIIDigit || $0.isASCIILowercase || $0 == "-" }
        return valid ? nil : "invalid architecture '\(value)': expected a name such as 'all' or 'amd64'"
    }

    private static func multiArchProblem(_ value: String) -> String? {
        ["same", "foreign", "allowed", "no"].contains(value.lowercased())
            ? nil : "Multi-Arch must be 'same', 'foreign', 'allowed' or 'no', found '\(value)'"
    }
}

/// Debian Policy §5.6.1 for package names, which layer names follow: lowercase letters, digits, `+`,
/// `-` and `.`, at least two characters, starting with a letter or digit.
func layerNameProblem(_ name: String) -> String? {
    let allowed = { (c: Character) in c.isASCIIDigit || c.isASCIILowercase || "+-.".contains(c) }
    if name.count < 2 { return "must be at least two characters long" }
    if !(name.first!.isASCIIDigit || name.first!.isASCIILowercase) {
        return "must start with a lowercase letter or digit"
    }
    if let bad = name.first(where: { !allowed($0) }) {
        return "character '\(bad)' is not allowed (only lowercase letters, digits, '+', '-' and '.')"
    }
    return nil
}
