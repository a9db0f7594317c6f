import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

struct LDFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ldf", abstract: "Read and check layer definition files.",
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse an LDF and its includes; print its layers.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The LDF.") var ldf: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let expanded = try LDF.loadExpanded(URL(fileURLWithPath: ldf), resolveInclude: LDF.defaultIncludeResolver)
            print(expanded)
        }
    }
}
