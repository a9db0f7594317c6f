import ArgumentParser
import Foundation
import Mirage

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Free objects nothing reaches, in the home store and every local repository.",
        discussion: """
            Keeps everything reachable from: active catalog images, images served by 'image mount', held \
            references ($STRATA_HOME/held/*, $STRATA_HOME/vlfs/*/held), and every layer, active or \
            withdrawn, of every local repository named in the home (which includes every layer a VLFS's \
            LDF names). A store that another process is writing into is skipped. Also frees the kernel \
            path's cached metadata images ($STRATA_HOME/cache/erofs) that no VLFS last mounted, and \
            unfinished builds of them.
            """)
    @OptionGroup var options: HomeOptions
    @Flag(help: "Report what would be freed, and free nothing.") var dryRun = false
    @Flag(help: "Print JSON (with the freed digests).") var json = false

    func run() throws {
        let home = options.strataHome
        let (reports, images) = try HomeLock.withExclusive(home) {
            let reports = try HomeRoots.collect(home: home).map { store in
                let report = try GarbageCollector.collect(store.store, roots: store.roots, dryRun: dryRun)
                if !dryRun { try store.catalog?.forgetCollected(report.freed) }
                return report
            }
            return (reports, try KernelImageCache.collect(home, dryRun: dryRun))
        }
        if json { return try printJSON(reports + (images.map { [$0] } ?? [])) }
        for report in reports {
            if let skipped = report.skipped {
                print("\(report.store): skipped: \(skipped)")
                continue
            }
            let missing = report.missing > 0 ? ", \(report.missing) missing (run strata fsck)" : ""
            print("\(report.store): \(report.objects) objects, \(report.reachable) reachable, \(dryRun ? "would free" : "freed") \(report.freedObjects) (\(report.freedBytes) bytes)\(missing)")
        }
        if let images {
            print("\(images.store): \(images.objects) metadata images, \(images.reachable) last mounted, \(dryRun ? "would free" : "freed") \(images.freedObjects) (\(images.freedBytes) bytes with unfinished builds)")
        }
    }
}
