import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify repositories: re-hash every object, and check that every indexed layer is whole.",
        discussion: """
            Without arguments, checks every repository named in the Strata home but 'debian'; for a served \
            repository that is its mirror (the layers fetched so far). Exits non-zero on any problem.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "Repository names or paths.") var repositories: [String] = []
    @Flag(help: "Print JSON.") var json = false

    struct Report: Encodable {
        var repository: String
        var objects = 0
        var corrupt: [String] = []
        var missing: [String] = []
    }

    func run() throws {
        let targets = repositories.isEmpty
            ? try options.strataHome.repositories().filter { $0.location != "debian" }.map(\.name)
            : repositories
        var reports: [Report] = []
        for target in targets {
            let repo = try options.repository(target)
            var report = Report(repository: repo.path)
            report.objects = try repo.store.allObjects().count
            report.corrupt = try repo.store.corruptObjects().map(\.description)
            // A mirror holds the layers fetched so far, each whole; the others are not missing.
            let roots = try repo.layers(includeWithdrawn: true).filter { repo.origin == nil || repo.store.has($0.digest) }
                .map { (name: "\($0.name) \($0.version)", digest: $0.digest) }
            report.missing = Reachability(store: repo.store, roots: roots).missing.map { "\($0.digest) (needed by \($0.referrer))" }
            reports.append(report)
        }
        if json {
            try printJSON(reports)
        } else {
            for report in reports {
                for digest in report.corrupt { print("\(report.repository): corrupt object \(digest)") }
                for missing in report.missing { print("\(report.repository): missing object \(missing)") }
                let clean = report.corrupt.isEmpty && report.missing.isEmpty
                print("\(report.repository): \(report.objects) objects, \(clean ? "clean" : "\(report.corrupt.count) corrupt, \(report.missing.count) missing")")
            }
        }
        if reports.contains(where: { !$0.corrupt.isEmpty || !$0.missing.isEmpty }) { throw ExitCode(1) }
    }
}
