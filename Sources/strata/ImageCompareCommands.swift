import ArgumentParser
import Foundation
import Mirage
import StrataStore

struct ImageDiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Compare two images: what was added, deleted, modified, or changed only in metadata.",
        discussion: """
            One line per change: A (added), D (deleted), M (content or type modified), m (metadata only), \
            with digests and, for images snapshot from a VLFS, the layer that provides the path. Takes time \
            proportional to the difference: subtrees with equal digests are never read.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The old image.") var old: String
    @Argument(help: "The new image.") var new: String
    @Flag(help: "List the contents of added and deleted directories too.") var recursive = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let catalog = try options.catalog()
        let a = try catalog.manifest(of: try catalog.resolve(try ImageReference(parsing: old), for: .checkout, by: .current))
        let b = try catalog.manifest(of: try catalog.resolve(try ImageReference(parsing: new), for: .checkout, by: .current))
        let changes = try ImageDiff.compare(a, b, store: catalog.store, expandDirectories: recursive)
        if json { return try printJSON(changes) }
        for change in changes {
            let layer = change.layer.map { "\t[\($0)]" } ?? ""
            switch change.change {
            case .added: print("A \(change.path)\t\(describe(change.new!))\(layer)")
            case .deleted: print("D \(change.path)\t\(describe(change.old!))\(layer)")
            case .modified: print("M \(change.path)\t\(describe(change.old!)) -> \(describe(change.new!))\(layer)")
            case .metadata: print("m \(change.path)\t\(metadataChange(change.old!, change.new!))\(layer)")
            }
        }
    }

    private func describe(_ side: ImageChange.Side) -> String {
        if let target = side.target { return "\(side.kind) -> \(target)" }
        return side.digest.map { "\(side.kind) \($0)" } ?? side.kind
    }

    private func metadataChange(_ old: ImageChange.Side, _ new: ImageChange.Side) -> String {
        var parts: [String] = []
        if old.mode != new.mode { parts.append("mode \(old.mode) -> \(new.mode)") }
        if (old.uid, old.gid) != (new.uid, new.gid) { parts.append("owner \(old.uid):\(old.gid) -> \(new.uid):\(new.gid)") }
        return parts.isEmpty ? "times or extended attributes" : parts.joined(separator: ", ")
    }
}

struct ImageDeltaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta", abstract: "Write a file-level delta that turns a checkout of image A into one of image B.",
        discussion: "The delta carries B's metadata for every entry it touches and only the contents of files that B adds or changes.")
    @OptionGroup var options: HomeOptions
    @Argument(help: "The source image.") var source: String
    @Argument(help: "The target image.") var target: String
    @Option(name: .shortAndLong, help: "The delta file to write.") var output: String

    func run() throws {
        let catalog = try options.catalog()
        let a = try catalog.resolve(try ImageReference(parsing: source), for: .checkout, by: .current)
        let b = try catalog.resolve(try ImageReference(parsing: target), for: .checkout, by: .current)
        let delta = try ImageDelta.make(from: (a.digest, try catalog.manifest(of: a)), to: (b.digest, try catalog.manifest(of: b)), store: catalog.store)
        let bytes = delta.encoded()
        try AtomicFile.write(bytes, to: output)
        print("\(output): \(a.reference) -> \(b.reference), \(delta.operations.count) operations, \(delta.blobs.count) file contents, \(bytes.count) bytes")
    }
}

struct ImageApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Apply a delta to a checkout of its source image, and verify the result against the target image.",
        discussion: """
            A damaged delta, or a directory that is plainly not a checkout of the source, is refused before \
            anything changes. After applying, the directory is hashed and must match the target image's tree \
            digest; prints the target image's digest on success.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The delta file.") var delta: String
    @Argument(help: "A checkout of the delta's source image.") var directory: String

    func run() throws {
        guard let data = FileManager.default.contents(atPath: delta) else { throw CatalogError("\(delta): cannot read the delta file") }
        let parsed = try ImageDelta(decoding: Array(data), file: delta)
        let catalog = try options.catalog()
        if let known = try? catalog.resolve(.digest(parsed.target)), known.filesystem != parsed.targetRoot.digest {
            throw CatalogError("\(delta) claims to produce image \(parsed.target), whose tree in the catalog is \(known.filesystem), not \(parsed.targetRoot.digest!)")
        }
        try HomeLock.withShared(options.strataHome) { try parsed.apply(to: directory, store: catalog.store) }
        print(parsed.target)
    }
}
