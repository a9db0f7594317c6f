import ArgumentParser
import Foundation
import Mirage
import StrataLayers
import StrataStore

struct Search: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search every image in the catalog by path glob, file content or layer.",
        discussion: """
            Criteria combine: '--layer "openssl (<< 3.0.11)"' finds images composed with an openssl layer \
            older than 3.0.11; '--path bin/openssl' or '--digest sha256:…' finds the images that hold a \
            file. In a path glob '*', '?' and '[…]' stay within one component and '**' spans any number; \
            a glob not starting with '/' matches at any depth ('libssl.so*'). Answers from the catalog's \
            index, without reading any image.
            """)
    @OptionGroup var options: HomeOptions
    @Option(help: "A path glob.") var path: String?
    @Option(help: "A file content digest.") var digest: String?
    @Option(help: "A layer name, optionally with a version constraint: 'NAME (OP VERSION)', OP one of << <= = >= >>.") var layer: String?
    @Flag(help: "Search deleted versions too.") var all = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if path == nil && digest == nil && layer == nil { throw ValidationError("give --path, --digest or --layer") }
        if let digest, Digest(digest) == nil { throw ValidationError("--digest: '\(digest)' is not a digest (sha256:<64 hex digits>)") }
    }

    func run() throws {
        let relation = try layer.map { text -> Relation in
            let relations = try Relation.parseList(text, field: "--layer", file: "command line", line: nil)
            guard relations.count == 1 else { throw ValidationError("--layer takes one layer, as 'NAME' or 'NAME (OP VERSION)'") }
            return relations[0]
        }
        let hits = try options.catalog().search(SearchQuery(path: path, content: digest.flatMap { Digest($0) }, layer: relation, includeDeleted: all))
        if json { return try printJSON(hits) }
        for hit in hits {
            let fields = [hit.image, hit.path, hit.digest?.description, hit.layer.map { "[\($0)]" }].compactMap { $0 }
            print(fields.joined(separator: "\t"))
        }
    }
}
