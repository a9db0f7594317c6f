import ArgumentParser
import Foundation
import StrataLayers
import StrataConvert
import StrataResolver
import StrataStore

struct LDFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldf", abstract: "Check, resolve and edit layer definition files.",
        subcommands: [Check.self, Resolve.self, Add.self, Remove.self, Hold.self, Unhold.self, Upgrade.self, LDFStorage.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse an LDF and its includes; print its explicit layers with the lines naming them.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The LDF.") var ldf: String

        func run() throws {
            let expanded = try options.strataHome.loadExpanded(ldf)
            for located in expanded.entries { print("\(located.entry)\t\(located.source)") }
        }
    }

    struct Resolve: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Resolve an LDF: fill its implicit block with every layer the explicit ones need.",
            discussion: """
                Prints the resolved LDF on stdout, or with --write replaces the file atomically and prints \
                what changed. Current implicit versions are kept where they still satisfy; layers nothing \
                needs are dropped. An unsatisfiable LDF is left untouched and the problems are explained.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The LDF.") var ldf: String
        @Flag(help: "Rewrite the LDF instead of printing it.") var write = false
        @Flag(help: "Import every Debian package the resolved LDF needs into the home's debian repository.") var fetch = false

        func run() throws {
            let resolved = try LDFEditor(home: options.strataHome).apply(.none, to: ldf)
            if fetch { try importDebianUnits(resolved.resolution, home: options.strataHome) }
            if write {
                try resolved.write()
                for change in resolved.changes { print(change) }
            } else {
                print(resolved.text, terminator: "")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add explicit layers to an LDF and re-resolve it, in one atomic rewrite.")
        @OptionGroup var edit: EditOptions
        func run() throws { try edit.apply { .add($0) } }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove explicit layers from an LDF; implicit layers nothing needs any more go too.")
        @OptionGroup var edit: EditOptions
        func run() throws { try edit.apply { .remove($0) } }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hold layers at their current version (or at =VERSION), making them explicit.")
        @OptionGroup var edit: EditOptions
        func run() throws { try edit.apply { .hold($0) } }
    }

    struct Unhold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release held layers; they keep their version until upgraded.")
        @OptionGroup var edit: EditOptions
        func run() throws { try edit.apply { .unhold($0) } }
    }

    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move unheld layers (all, or those named) to the newest versions the repositories offer.")
        @OptionGroup var edit: EditOptions
        func run() throws { try edit.apply(namesRequired: false) { .upgrade($0) } }
    }
}

/// The arguments of the editing verbs: `LDF LAYER...`.
struct EditOptions: ParsableArguments {
    @OptionGroup var options: HomeOptions
    @Argument(help: "The LDF.") var ldf: String
    @Argument(help: "REPO/NAME, REPO/NAME=VERSION, or NAME (when the LDF or the home's one repository tells which).")
    var layers: [String] = []
    @Flag(help: "Import every Debian package the resolved LDF needs into the home's debian repository.") var fetch = false

    func apply(namesRequired: Bool = true, _ edit: ([LayerReference]) -> LDFEdit) throws {
        if namesRequired && layers.isEmpty { throw ValidationError("name at least one layer") }
        let references = try layers.map(LayerReference.init(parsing:))
        let resolved = try LDFEditor(home: options.strataHome).apply(edit(references), to: ldf)
        if fetch { try importDebianUnits(resolved.resolution, home: options.strataHome) }
        try resolved.write()
        for change in resolved.changes { print(change) }
    }
}

/// Imports the Debian units of a resolution, with progress on stderr.
func importDebianUnits(_ resolution: Resolution, home: StrataHome) throws {
    let debian = DebianArchive(home: home)
    let units = resolution.units.filter { $0.location == .debian }
    let progress = Progress()
    _ = try debian.ensureImported(units) { index, unit in
        progress.show("[\(index + 1)/\(units.count)] \(unit.name) \(unit.version)")
    }
    progress.finish()
}

/// `strata ldf storage`: VM2Docker's storage table for machines imported into one repository.
struct LDFStorage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "What machines cost as layers against what they cost as copies (VM2Docker's Tables 5.4-5.10).",
        discussion: """
            One row per LDF (a machine, as strata import rootfs wrote it): its files as a copy would hold them \
            (β), its package layers (DI_1) and configuration layers (DI_3), the layers no other LDF given uses \
            (what adding it costs) and how much less that is than a copy (χ). The last row: all machines as \
            copies, every layer they compose stored once, and the saving. Sizes in MB (10^6 bytes); --json gives bytes.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The machines' LDFs.") var ldfs: [String]
    @Flag(help: "Print JSON (bytes).") var json = false

    func run() throws {
        let home = options.strataHome
        try makeDirectories(home.path + "/cache")
        let scratch = try temporaryDirectory(in: home.path + "/cache", prefix: "storage-")
        defer { try? removeTree(scratch) }
        let table = try StorageTable(ldfs: ldfs, home: home, scratch: scratch)
        if json { return try printJSON(table) }
        let megabytes = { (bytes: UInt64) in String(format: "%.1f", Double(bytes) / 1_000_000) }
        let rows = [["machine", "files (β)", "packages (DI_1)", "config (DI_3)", "own layers", "χ %"]]
            + table.machines.map { [$0.name, megabytes($0.files), megabytes($0.packageLayers), megabytes($0.configuration), megabytes($0.own), String(format: "%.1f", $0.reduction)] }
            + [["total", megabytes(table.files), "", "", megabytes(table.layers), String(format: "%.1f", table.saved)]]
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            print(row.enumerated().map { column, text in
                column == 0 ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - text.count) + text
            }.joined(separator: "  "))
        }
    }
}
