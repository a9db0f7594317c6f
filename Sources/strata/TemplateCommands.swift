import ArgumentParser
import Foundation
import StrataLayers
import StrataStore
import VLFS

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template", abstract: "Record templates, mount them to configure them, and promote their configuration into a layer.",
        subcommands: [Create.self, TemplateMount.self, Promote.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record an LDF as a template of the home ($STRATA_HOME/templates/NAME.ldf), which any LDF includes as @NAME.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The template's name (a layer name: lowercase letters, digits, '+', '-', '.').") var name: String
        @Argument(help: "The LDF to copy.") var ldf: String

        func run() throws {
            let home = options.strataHome
            try StrataHome.checkTemplateName(name)
            let target = home.templateLDF(name)
            guard !FileManager.default.fileExists(atPath: target) else { throw LayerError("template '\(name)' exists already (\(target))") }
            let state = try VLFSState(home: home, name: name)
            guard !FileManager.default.fileExists(atPath: state.directory) else {
                throw LayerError("a VLFS named '\(name)' exists already (\(state.directory)): a template's VLFS takes its name")
            }
            let text: String
            do { text = try String(contentsOfFile: ldf, encoding: .utf8) } catch { throw LayerError("\(ldf): cannot read: \(error.localizedDescription)") }
            // Includes are checked from where the copy will stand: one beside the original must be a template too.
            let parsed = try LDF.parse(text, file: ldf)
            _ = try LDF.loadExpanded(URL(fileURLWithPath: target), edited: parsed, resolveInclude: home.resolveInclude)
            try makeDirectories(home.templatesDirectory)
            try AtomicFile.write(text, to: target)
            try state.recordLDF(target)
            print(target)
        }
    }

    struct TemplateMount: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mount", abstract: "Mount a template's VLFS (named as the template) to configure it through the mount.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The template's name.") var name: String
        @Argument(help: "An existing, empty directory.") var mountpoint: String

        func run() throws {
            let ldf = options.strataHome.templateLDF(name)
            guard FileManager.default.fileExists(atPath: ldf) else { throw LayerError("template '\(name)' not found: no \(ldf)") }
            try Mount.parse([ldf, mountpoint, "--name", name, "--home", options.strataHome.path]).run()
        }
    }

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn a template's private layer and deletions into the next version of its configuration layer (NAME-config).",
            discussion: """
                The layer (Layer-Type: config) goes into REPO, replaces the template's previous configuration layer \
                (whose content it carries on) in the template's LDF, pinned, and the template starts again from an \
                empty private layer, kept as the catalog image NAME-evidence. A mounted template is changed through \
                its daemon. Prints 'name version digest'.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "The template's name.") var name: String
        @Option(help: "The repository, by its name in the home, that receives the configuration layer.") var repo: String

        func run() throws {
            let record = try TemplatePromotion.promote(name, repositoryName: repo, home: options.strataHome)
            print("\(record.name) \(record.version) \(record.digest)")
        }
    }
}
