import ArgumentParser
import Foundation
import StrataConvert
import StrataLayers
import StrataStore

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Bring existing systems in as layers.", subcommands: [Rootfs.self, ImportOCI.self])

    struct Rootfs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decompose a Debian machine's root filesystem into package layers, one configuration layer and an LDF.",
            discussion: """
                SOURCE is a directory (a mounted disk image is one) or a tarball of a Debian system. Every \
                installed package becomes its layer at the installed version in REPO (from the Debian archive, \
                or rebuilt from the machine's files when the archive no longer has that version); everything \
                else that differs from the packages goes into the configuration layer NAME-config; the LDF \
                names the minimal explicit set, the configuration layer, and the rest as its implicit block. \
                Left out by default (and by --verify): \(Exclusions.defaults.joined(separator: " ")). \
                Prints the configuration layer's 'name version digest' first.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The machine's root: a directory or a tarball.") var source: String
        @Option(help: "The local repository (by name in the home) for the layers.") var repo: String
        @Option(help: "The LDF to write.") var ldf: String
        @Option(help: "The configuration layer's name (default: the LDF's name with -config).") var name: String?
        @Option(help: "A file of exclusion patterns replacing the default list (one absolute pattern a line, # comments).") var exclusions: String?
        @Option(help: "An exclusion pattern added to the list (repeatable), e.g. '/srv/cache/*'.") var exclude: [String] = []
        @Flag(help: "Compose the result and compare it with SOURCE; exit non-zero if they differ.") var verify = false

        func run() throws {
            let base = try exclusions.map { try Exclusions(file: $0).patterns } ?? Exclusions.defaults
            let progress = Progress()
            let importer = RootfsImport(home: options.strataHome, repositoryName: repo, exclusions: try Exclusions(base + exclude),
                                        progress: { progress.show($0) })
            let configName = name ?? (((ldf as NSString).lastPathComponent as NSString).deletingPathExtension + "-config")
            let result = try importer.run(source: source, ldf: ldf, configName: configName, verify: verify)
            progress.finish()
            print("\(result.configLayer.name) \(result.configLayer.version) \(result.configLayer.digest)")
            print("system: \(result.system)")
            print("packages: \(result.packages.count) installed, \(result.fromArchive.count) from the Debian archive, \(result.fromMachine.count) rebuilt from the machine's files")
            for name in result.fromMachine { print("  rebuilt: \(name) (its version is not in the archive)") }
            print("explicit: \(result.explicit.count) layers (VM2Docker's minimal set \(result.minimal.count), apt's manual set \(result.manual.count)): \(result.explicit.joined(separator: " "))")
            let counts = result.configuration
            print("configuration: \(counts.different) paths differ from the packages (\(counts.compared) compared, \(counts.excluded) excluded)")
            for note in result.notes { print("note: \(note)") }
            print("wrote \(ldf)")
            guard let verification = result.verification else { return }
            let rows = [("paths compared", verification.counts.compared), ("identical", verification.counts.identical),
                        ("excluded", verification.counts.excluded), ("different", verification.counts.different)]
            print("verification:")
            for (label, value) in rows { print("  " + label.padding(toLength: 16, withPad: " ", startingAt: 0) + String(value)) }
            for (path, change) in verification.differences.prefix(50) { print("  differs: /\(path) (\(describe(change)))") }
            if verification.counts.different > 0 { throw ExitCode(1) }
        }

        private func describe(_ change: TreeDiff.Change) -> String {
            switch change {
            case .added: "only on the machine"
            case .deleted: "only in the layers"
            case .modified: "content or type"
            case .metadata: "owner, mode, times or attributes"
            }
        }
    }
}
