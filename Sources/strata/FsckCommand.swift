import ArgumentParser
import Foundation
import Mirage
import StrataLayers
import StrataStore

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify repositories and the image catalog: re-hash every object, and check that every indexed layer and catalog image is whole.",
        discussion: """
            Without arguments, checks every repository named in the Strata home but 'debian' (for a served \
            repository, its mirror: the layers fetched so far), and the home's store against its catalog \
            (every active image version must be whole; deleted ones may be collected). Exits non-zero on any problem.
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
            let roots = try repo.layers(includeWithdrawn: true).filter { repo.origin == nil || repo.store.has($0.digest) }.flatMap(\.roots)
            report.missing = Reachability(store: repo.store, roots: roots).missing.map { "\($0.digest) (needed by \($0.referrer))" }
            reports.append(report)
        }
        if repositories.isEmpty, FileManager.default.fileExists(atPath: options.strataHome.path + "/catalog.sqlite") {
            reports.append(try checkCatalog(try options.catalog()))
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

    /// The home store against the catalog: every active version's objects must all be there.
    private func checkCatalog(_ catalog: Catalog) throws -> Report {
        var report = Report(repository: catalog.store.root)
        report.objects = try catalog.store.allObjects().count
        report.corrupt = try catalog.store.corruptObjects().map(\.description)
        for version in try catalog.allVersions() where version.state == .active {
            let missing = Reachability(store: catalog.store, roots: [(name: "image \(version.reference)", digest: version.digest)]).missing
            report.missing += missing.map { "\($0.digest) (needed by \($0.referrer))" }
        }
        return report
    }
}
