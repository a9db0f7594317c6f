import Foundation

/// One layer line of an LDF: `repository/layer [version]`, or `=repository/layer version` when held.
public struct LDFEntry: Hashable, Sendable, CustomStringConvertible {
    public var repository: String
    public var layer: String
    public var version: DebianVersion?
    public var held: Bool

    public init(repository: String, layer: String, version: DebianVersion? = nil, held: Bool = false) {
        self.repository = repository
        self.layer = layer
        self.version = version
        self.held = held
    }

    /// The entry as an LDF line: `=main/mailx 3a8.1.2-4`.
    public var description: String {
        var text = (held ? "=" : "") + "\(repository)/\(layer)"
        if let version { text += " \(version)" }
        return text
    }

    /// Why the entry cannot be written to an LDF, if it cannot.
    fileprivate var problem: String? {
        if let problem = repositoryNameProblem(repository) {
            return "invalid repository name '\(repository)': \(problem)"
        }
        if let problem = layerNameProblem(layer) { return "invalid layer name '\(layer)': \(problem)" }
        if held && version == nil {
            return "held layer '=\(repository)/\(layer)' needs a version ('=' holds a layer at the version given)"
        }
        return nil
    }
}

/// An item of an LDF's explicit block.
public enum LDFItem: Hashable, Sendable {
    case layer(LDFEntry)
    /// `@NAME`: the explicit layers of another VLFS's LDF (a template), recursively.
    case include(String)
}

/// An LDF edit that cannot be made.
public struct LDFEditError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}

extension LDFEditError: LocalizedError {
    public var errorDescription: String? { message }
}

/// A layer definition file (DESIGN §5), kept line by line so that rendering an unmodified parse gives
/// the input back byte for byte and edits change only the lines they touch.
///
/// The explicit block runs up to the first blank line that follows a layer or include; everything
/// after that line is the implicit block, written by the resolver.
public struct LDF: Sendable {
    private struct Line: Sendable {
        var text: String
        var kind: Kind

        enum Kind: Sendable {
            case blank, comment, layer(LDFEntry), include(String)
        }

        var entry: LDFEntry? {
            if case .layer(let entry) = kind { entry } else { nil }
        }

        var isItem: Bool {
            switch kind {
            case .layer, .include: true
            case .blank, .comment: false
            }
        }

        var isBlank: Bool {
            if case .blank = kind { true } else { false }
        }
    }

    private var lines: [Line] = []
    private var endsWithNewline = true

    /// An empty LDF.
    public init() {}

    // MARK: Parsing and rendering

    public static func parse(_ text: String, file: String) throws -> LDF {
        var ldf = LDF()
        var raw = text.isEmpty ? [] : splitLines(text)
        if raw.last == "" {
            raw.removeLast()
        } else if !raw.isEmpty {
            ldf.endsWithNewline = false
        }
        var inImplicit = false
        var sawItem = false
        var seenLayers: [String: Int] = [:]
        var seenIncludes: [String: Int] = [:]
        for (index, text) in raw.enumerated() {
            let number = index + 1
            let kind = try classify(text, file: file, line: number)
            func fail(_ message: String) -> ParseError { ParseError(file: file, line: number, message: message) }
            switch kind {
            case .blank:
                if sawItem && !inImplicit {
                    inImplicit = true
                    seenLayers = [:]
                }
            case .comment:
                break
            case .include(let name):
                if inImplicit {
                    throw fail("include '@\(name)' in the implicit block: includes belong in the first block")
                }
                if let first = seenIncludes.updateValue(number, forKey: name) {
                    throw fail("duplicate include '@\(name)' (first on line \(first))")
                }
                sawItem = true
            case .layer(let entry):
                if let first = seenLayers.updateValue(number, forKey: entry.layer) {
                    throw fail("duplicate layer '\(entry.layer)' in the \(inImplicit ? "implicit" : "explicit") block (first on line \(first))")
                }
                sawItem = true
            }
            ldf.lines.append(Line(text: String(text), kind: kind))
        }
        return ldf
    }

    public func render() -> String {
        if lines.isEmpty { return "" }
        return lines.map(\.text).joined(separator: "\n") + (endsWithNewline ? "\n" : "")
    }

    private static func classify(_ text: Substring, file: String, line: Int) throws -> Line.Kind {
        let content = contentPart(of: text)
        if content.isEmpty { return text.contains("#") ? .comment : .blank }
        func fail(_ message: String) -> ParseError { ParseError(file: file, line: line, message: message) }

        let tokens = content.split(whereSeparator: \.isWhitespace)
        if tokens[0].hasPrefix("@") {
            let name = tokens[0].dropFirst()
            guard tokens.count == 1, !name.isEmpty else { throw fail("expected '@template', found '\(content)'") }
            return .include(String(name))
        }
        let held = tokens[0].hasPrefix("=")
        let reference = held ? tokens[0].dropFirst() : tokens[0]
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        guard tokens.count <= 2, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            let form = held ? "=repository/layer version" : "repository/layer [version]"
            throw fail("expected '\(form)', found '\(content)'")
        }
        var entry = LDFEntry(repository: String(parts[0]), layer: String(parts[1]), held: held)
        if tokens.count == 2 {
            do { entry.version = try DebianVersion(String(tokens[1])) } catch let error as ParseError {
                throw fail("'\(reference)': \(error.message)")
            }
        }
        if let problem = entry.problem { throw fail(problem) }
        return .layer(entry)
    }

    /// The part of a line before any `#`, without surrounding whitespace.
    private static func contentPart(of text: Substring) -> Substring {
        let beforeComment = text.prefix { $0 != "#" }
        return beforeComment.drop(while: \.isWhitespace).droppingTrailing(while: \.isWhitespace)
    }

    // MARK: Reading

    /// Index of the blank line that ends the explicit block, if there is one.
    private var separatorIndex: Int? {
        guard let firstItem = lines.firstIndex(where: \.isItem) else { return nil }
        return lines[firstItem...].firstIndex(where: \.isBlank)
    }

    private var explicitRange: Range<Int> { 0..<(separatorIndex ?? lines.count) }
    private var implicitRange: Range<Int> { separatorIndex.map { ($0 + 1)..<lines.count } ?? lines.count..<lines.count }

    /// The explicit block's layers and includes, in file order.
    public var explicitItems: [LDFItem] { explicitItemsWithLines.map(\.item) }

    public var explicitEntries: [LDFEntry] { lines[explicitRange].compactMap(\.entry) }

    /// The names of the templates included with `@`, in file order.
    public var includes: [String] {
        lines[explicitRange].compactMap { if case .include(let name) = $0.kind { name } else { nil } }
    }

    public var implicitEntries: [LDFEntry] { lines[implicitRange].compactMap(\.entry) }

    /// The line of the entry for `layer`, looking in the explicit block first; for error messages.
    public func lineNumber(ofLayer layer: String) -> Int? {
        let explicit = explicitRange.first { lines[$0].entry?.layer == layer }
        return (explicit ?? implicitRange.first { lines[$0].entry?.layer == layer }).map { $0 + 1 }
    }

    private var explicitItemsWithLines: [(item: LDFItem, line: Int)] {
        explicitRange.compactMap { index in
            switch lines[index].kind {
            case .layer(let entry): (.layer(entry), index + 1)
            case .include(let name): (.include(name), index + 1)
            case .blank, .comment: nil
            }
        }
    }

    // MARK: Editing

    /// Adds an explicit layer, or replaces the explicit entry of the same layer in place (keeping its
    /// indentation and trailing comment). An implicit entry of that layer is removed: it is now explicit.
    public mutating func addExplicit(_ entry: LDFEntry) throws {
        if let problem = entry.problem { throw LDFEditError(message: problem) }
        if let index = explicitRange.first(where: { lines[$0].entry?.layer == entry.layer }) {
            replaceEntry(at: index, with: entry)
            return
        }
        if let index = implicitRange.first(where: { lines[$0].entry?.layer == entry.layer }) {
            lines.remove(at: index)
        }
        let newLine = Line(text: entry.description, kind: .layer(entry))
        if let last = explicitItemsWithLines.last {
            lines.insert(newLine, at: last.line)
        } else {
            lines.append(newLine)
        }
    }

    /// Removes an explicit layer; returns whether it was there. When no explicit item is left, the
    /// implicit entries go too: nothing needs them, and without an explicit entry before the blank
    /// line they would read as explicit.
    @discardableResult
    public mutating func removeExplicit(repository: String, layer: String) -> Bool {
        guard let index = explicitIndex(repository: repository, layer: layer) else { return false }
        let separator = separatorIndex
        lines.remove(at: index)
        // The separator line now sits at `separator - 1`, the implicit block after it.
        if let separator, !lines[..<(separator - 1)].contains(where: \.isItem) {
            lines = lines.enumerated().filter { $0.offset < separator || $0.element.entry == nil }.map(\.element)
        }
        return true
    }

    /// Holds a layer at `version`, or at the version its entry already names. An implicit entry becomes
    /// an explicit held one. Returns false if the LDF has no entry for the layer.
    @discardableResult
    public mutating func hold(repository: String, layer: String, version: DebianVersion? = nil) throws -> Bool {
        if let index = explicitIndex(repository: repository, layer: layer), var entry = lines[index].entry {
            guard let held = version ?? entry.version else {
                throw LDFEditError(message: "cannot hold \(repository)/\(layer): no version given, and the LDF names none")
            }
            entry.version = held
            entry.held = true
            replaceEntry(at: index, with: entry)
            return true
        }
        guard let index = implicitRange.first(where: {
            lines[$0].entry.map { $0.repository == repository && $0.layer == layer } ?? false
        }), var entry = lines[index].entry else { return false }
        entry.version = version ?? entry.version
        entry.held = true
        try addExplicit(entry)
        return true
    }

    /// Releases a held explicit layer, keeping its version. Returns false if it is not an explicit entry.
    @discardableResult
    public mutating func unhold(repository: String, layer: String) -> Bool {
        guard let index = explicitIndex(repository: repository, layer: layer), var entry = lines[index].entry
        else { return false }
        entry.held = false
        replaceEntry(at: index, with: entry)
        return true
    }

    /// Rewrites the implicit block with `entries`, sorted by layer name, creating the blank separator
    /// line if there is none. Entries for layers listed explicitly are skipped. Comment lines stay:
    /// those above the first entry and below the last keep their place, a comment directly above an
    /// entry moves with it, and comments above entries that go away end up after the entries.
    public mutating func setImplicit(_ entries: [LDFEntry]) throws {
        let explicitLayers = Set(explicitEntries.map(\.layer))
        let entries = entries.filter { !explicitLayers.contains($0.layer) }
            .sorted { ($0.layer, $0.repository) < ($1.layer, $1.repository) }
        var seen: Set<String> = []
        for entry in entries {
            if let problem = entry.problem { throw LDFEditError(message: problem) }
            if !seen.insert(entry.layer).inserted {
                throw LDFEditError(message: "layer '\(entry.layer)' given twice for the implicit block")
            }
        }
        if !entries.isEmpty && explicitItemsWithLines.isEmpty {
            throw LDFEditError(message: "an LDF with no explicit layer or include cannot have implicit layers")
        }
        if separatorIndex == nil {
            if entries.isEmpty { return }
            lines.append(Line(text: "", kind: .blank))
        }
        let region = Array(lines[implicitRange])
        let entryIndices = region.indices.filter { region[$0].entry != nil }

        var header = region
        var footer: [Line] = []
        // Each old entry with the comment and blank lines directly above it, by layer.
        var groups: [String: (above: [Line], line: Line)] = [:]
        if let first = entryIndices.first, let last = entryIndices.last {
            header = Array(region[..<first])
            footer = Array(region[(last + 1)...])
            var start = first
            for index in entryIndices {
                groups[region[index].entry!.layer] = (Array(region[start..<index]), region[index])
                start = index + 1
            }
        }
        var body: [Line] = []
        for entry in entries {
            if let group = groups.removeValue(forKey: entry.layer) {
                body += group.above
                body.append(Self.replacingEntry(of: group.line, with: entry))
            } else {
                body.append(Line(text: entry.description, kind: .layer(entry)))
            }
        }
        let orphaned = entryIndices.flatMap { index in groups[region[index].entry!.layer]?.above ?? [] }
        lines.replaceSubrange(implicitRange, with: header + body + orphaned + footer)
    }

    private func explicitIndex(repository: String, layer: String) -> Int? {
        explicitRange.first { index in
            lines[index].entry.map { $0.repository == repository && $0.layer == layer } ?? false
        }
    }

    private mutating func replaceEntry(at index: Int, with entry: LDFEntry) {
        lines[index] = Self.replacingEntry(of: lines[index], with: entry)
    }

    /// The line with `entry` in place of its entry, keeping indentation and what follows the entry; a
    /// trailing comment keeps its column when there is room.
    private static func replacingEntry(of line: Line, with entry: LDFEntry) -> Line {
        let indent = line.text.prefix(while: \.isWhitespace)
        let content = contentPart(of: Substring(line.text))
        let rest = line.text[content.endIndex...]
        let newContent = entry.description
        var text = String(indent) + newContent + rest
        if let hash = rest.firstIndex(of: "#"), content.count != newContent.count {
            let gap = rest[..<hash]
            let padding = max(content.count + gap.count - newContent.count, gap.isEmpty ? 0 : 1)
            text = indent + newContent + String(repeating: " ", count: padding) + rest[hash...]
        }
        return Line(text: text, kind: .layer(entry))
    }

    // MARK: Includes

    /// Loads an LDF and, recursively, the templates it includes.
    ///
    /// - Parameter edited: the root LDF as it is about to be written, used instead of reading `url`
    ///   (an editing verb resolves its edit before anything is written).
    /// - Parameter resolveInclude: maps an `@NAME` and the URL of the file naming it to the template's
    ///   URL, or nil if there is none. The default is ``defaultIncludeResolver(name:from:)``.
    public static func loadExpanded(
        _ url: URL, edited: LDF? = nil,
        resolveInclude: (String, URL) -> URL? = { defaultIncludeResolver(name: $0, from: $1) }
    ) throws -> ExpandedLDF {
        var entries: [ExpandedLDF.LocatedEntry] = []
        var includeOrder: [URL] = []
        var stackingOrder: [String] = []
        // Each file's implicit layers: its own block, or else those of the templates it includes.
        var implicitOf: [String: [ExpandedLDF.LocatedEntry]] = [:]
        var finished: Set<String> = []
        var stack: [(key: String, url: URL)] = []

        func identity(_ url: URL) -> String { url.standardizedFileURL.resolvingSymlinksInPath().path }
        // Names as the user gave them: relative URLs stay relative ("./" comes from resolving a sibling).
        func display(_ url: URL) -> String {
            let path = url.relativePath
            return path.hasPrefix("./") ? String(path.dropFirst(2)) : path
        }

        func load(_ url: URL, includedAs include: (name: String, site: ExpandedLDF.Source)?) throws -> LDF {
            if include == nil, let edited { return try expand(edited, at: url) }
            let text: String
            do {
                text = try String(contentsOf: url, encoding: .utf8)
            } catch {
                let reason = readFailureReason(error)
                if let (name, site) = include {
                    throw ParseError(file: site.file, line: site.line,
                                     message: "cannot read template '\(name)' (\(display(url))): \(reason)")
                }
                throw ParseError(file: display(url), line: nil, message: "cannot read: \(reason)")
            }
            return try expand(try parse(text, file: display(url)), at: url)
        }

        func expand(_ ldf: LDF, at url: URL) throws -> LDF {
            stack.append((identity(url), url))
            stackingOrder.append(display(url))
            var included: [String] = []
            for (item, line) in ldf.explicitItemsWithLines {
                let source = ExpandedLDF.Source(file: display(url), line: line)
                switch item {
                case .layer(let entry):
                    entries.append(.init(entry: entry, source: source))
                case .include(let template):
                    guard let target = resolveInclude(template, url) else {
                        throw ParseError(file: source.file, line: line, message: "template '\(template)' not found")
                    }
                    let key = identity(target)
                    if let start = stack.firstIndex(where: { $0.key == key }) {
                        let chain = (stack[start...].map(\.url) + [target]).map(display)
                        throw ParseError(file: source.file, line: line,
                                         message: "include cycle: \(chain.joined(separator: " -> "))")
                    }
                    if !finished.contains(key) {
                        _ = try load(target, includedAs: (template, source))
                    }
                    included.append(key)
                }
            }
            let own = ldf.implicitRange.compactMap { index in
                ldf.lines[index].entry.map { ExpandedLDF.LocatedEntry(entry: $0, source: .init(file: display(url), line: index + 1)) }
            }
            var inherited: [ExpandedLDF.LocatedEntry] = []
            var seen: Set<String> = []
            for key in included {
                inherited += (implicitOf[key] ?? []).filter { seen.insert($0.entry.layer).inserted }
            }
            implicitOf[identity(url)] = own.isEmpty ? inherited : own
            stack.removeLast()
            finished.insert(identity(url))
            includeOrder.append(url)
            return ldf
        }

        let root = try load(url, includedAs: nil)
        return ExpandedLDF(root: root, file: display(url), entries: entries, includeOrder: includeOrder, stackingOrder: stackingOrder,
                           implicitEntries: implicitOf[identity(url)] ?? [])
    }

    /// strerror's words when reading failed with an errno, which Foundation's message buries.
    private static func readFailureReason(_ error: Error) -> String {
        if let posix = (error as? CocoaError)?.underlying.map({ $0 as NSError }), posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        return error.localizedDescription
    }

    /// Finds `NAME`, then `NAME.ldf`, relative to the including file's directory (or at NAME if absolute),
    /// then `NAME.ldf` in `templates` (a Strata home's templates, see `StrataHome.resolveInclude`).
    public static func defaultIncludeResolver(name: String, from includingFile: URL, templates: String? = nil) -> URL? {
        let base = name.hasPrefix("/")
            ? URL(fileURLWithPath: name)
            : includingFile.deletingLastPathComponent().appendingPathComponent(name)
        var candidates = [base, base.appendingPathExtension("ldf")]
        if let templates, !name.contains("/") { candidates.append(URL(fileURLWithPath: templates).appendingPathComponent(name + ".ldf")) }
        for candidate in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        return nil
    }
}

/// An LDF with its includes followed.
public struct ExpandedLDF: Sendable {
    public struct Source: Hashable, Sendable, CustomStringConvertible {
        /// The file as its URL's relative path, i.e. as the user named it.
        public var file: String
        public var line: Int

        public init(file: String, line: Int) {
            self.file = file
            self.line = line
        }

        public var description: String { "\(file):\(line)" }
    }

    public struct LocatedEntry: Hashable, Sendable {
        public var entry: LDFEntry
        public var source: Source

        public init(entry: LDFEntry, source: Source) {
            self.entry = entry
            self.source = source
        }
    }

    /// The file that was loaded, for its implicit block and for edits.
    public var root: LDF
    /// The root's name as the user gave it, for messages (`file:line`).
    public var file: String
    /// The explicit layers of the root and of every template it includes, in file order with each
    /// include expanded where it stands; a template included twice contributes once. The same layer
    /// may appear more than once (a template and the file including it both name it): the resolver
    /// decides, and can name both sources.
    public var entries: [LocatedEntry]
    /// Every file read, each after the templates it includes and the root last.
    public var includeOrder: [URL]
    /// Every file read (as `Source.file` names it), each before the templates it includes and those in
    /// the order they are included: the stacking order of configuration layers, topmost first.
    public var stackingOrder: [String]
    /// The implicit layers that compose: the root's own implicit block, or when it has none (an
    /// appliance's `@TEMPLATE` alone), those of the templates it includes, recursively, the first
    /// template naming a layer winning. So resolving or upgrading a template reaches every LDF that
    /// includes it without an implicit block of its own.
    public var implicitEntries: [LocatedEntry]
}

/// Repository names as LDF lines spell them: a letter or digit, then letters, digits, `-`, `_` or `.`.
func repositoryNameProblem(_ name: String) -> String? {
    guard let first = name.first, first.isASCIIAlphanumeric else { return "must start with a letter or digit" }
    if let bad = name.first(where: { !($0.isASCIIAlphanumeric || "-_.".contains($0)) }) {
        return "character '\(bad)' is not allowed"
    }
    return nil
}
