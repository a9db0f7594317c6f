import Foundation
import StrataLayers
import StrataResolver
import StrataStore
import StrataTestSupport
import Testing

/// A scratch Strata home with local repositories of tiny layers whose metadata the test writes.
final class World {
    let scratch: TemporaryDirectory
    var home: StrataHome { StrataHome(explicit: scratch.path + "/home") }

    init(_ label: String = #function) throws {
        scratch = try TemporaryDirectory(label)
    }

    /// Creates repository `name` (appended to the home's list, so later ones have lower priority)
    /// holding one layer per metadata text; each text is the fields after `Layer`/`Version`.
    @discardableResult
    func repository(_ name: String, _ layers: [String: String]) throws -> Repository {
        let path = scratch.path + "/" + name
        let repository = try Repository.create(at: path)
        for (unit, fields) in layers.sorted(by: { $0.key < $1.key }) {
            let parts = unit.split(separator: " ").map(String.init)
            let directory = "\(name)-layers/\(parts[0])_\(parts[1])"
            try scratch.write(directory + "/metadata", "Layer: \(parts[0])\nVersion: \(parts[1])\n" + fields)
            try scratch.write(directory + "/filesystem/usr/share/doc/\(parts[0])/README", unit + "\n")
            _ = try repository.importLayer(from: scratch.path + "/" + directory)
        }
        try home.addRepository(name: name, location: path)
        return repository
    }

    /// Writes an LDF and returns its path.
    @discardableResult
    func ldf(_ name: String, _ text: String) throws -> String {
        try scratch.write(name, text)
        return scratch.path + "/" + name
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// Resolves (after `edit`) without writing.
    func resolve(_ path: String, _ edit: LDFEdit = .none) throws -> ResolvedLDF {
        try LDFEditor(home: home).apply(edit, to: path)
    }

    /// Applies an edit and writes the LDF, returning the new text.
    @discardableResult
    func edit(_ path: String, _ edit: LDFEdit) throws -> String {
        let resolved = try LDFEditor(home: home).apply(edit, to: path)
        try resolved.write()
        return resolved.text
    }

    /// The message of the error `body` throws, with this world's directory left out of paths.
    func failure(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> String {
        do {
            try body()
        } catch {
            return "\(error)".replacingOccurrences(of: scratch.path + "/", with: "")
        }
        Issue.record("expected an error", sourceLocation: sourceLocation)
        return ""
    }

    /// `name version` of every unit of the resolution, sorted.
    func units(_ resolved: ResolvedLDF) -> [String] {
        resolved.resolution.units.map { "\($0.name) \($0.version)" }.sorted()
    }
}

func references(_ texts: String...) throws -> [LayerReference] {
    try texts.map(LayerReference.init(parsing:))
}
