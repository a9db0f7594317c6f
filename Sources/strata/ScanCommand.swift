import ArgumentParser
import Foundation
import Mirage
import StrataLayers
import StrataStore
import VLFS
import Forensics

struct Scan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scan an image or a layer offline: setuid/setgid files, world-writable entries, suspicious executables, changed configuration, denied content.",
        discussion: """
            TARGET (and --base) is an image (NAME, NAME@N, NAME@TAG, digest), a layer as \
            REPO/NAME[=VERSION], or a VLFS as vlfs:NAME (scanned as it is now, mounted or not). With --base, also reports configuration files and system executables that \
            changed relative to it. Each finding has a severity: critical, high, medium, low or info.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The image or layer to scan.") var target: String
    @Option(help: "An image or layer to compare against.") var base: String?
    @Option(help: "A deny list: one 'sha256:<hex> [reason]' a line.") var deny: String?
    @Option(help: "Exit non-zero when a finding is at least this severe.") var failOn: Finding.Severity?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let denyList = try deny.map { try DenyList(file: $0) } ?? DenyList()
        var findings = try Scanner.scan(try scanTree(target), base: try base.map(scanTree), deny: denyList)
        if target.hasPrefix("vlfs:") { findings = (findings + (try privateLayerFindings(String(target.dropFirst(5)), deny: denyList))).sorted { ($0.severity, $0.path, $0.rule) < ($1.severity, $1.path, $1.rule) } }
        if json {
            try printJSON(findings)
        } else {
            for finding in findings { print("\(finding.severity.rawValue)\t\(finding.rule)\t\(finding.path)\t\(finding.detail)") }
            let counts = Finding.Severity.allCases.map { severity in "\(findings.filter { $0.severity == severity }.count) \(severity.rawValue)" }
            printError("\(target): \(findings.count) findings (\(counts.joined(separator: ", ")))")
        }
        if let failOn, findings.contains(where: { $0.severity <= failOn }) { throw ExitCode(2) }
    }

    /// What the VLFS's private layer changed relative to its shared layers (a file shadowing a shared
    /// binary or library, executables added to system directories, changed configuration, deletions),
    /// as `private status` judges it.
    private func privateLayerFindings(_ name: String, deny: DenyList) throws -> [Finding] {
        let home = options.strataHome
        return try PrivateStatus.changes(of: try VLFSState(home: home, name: name), home: home, catalog: try options.catalog(), deny: deny)
            .filter { $0.severity < .info }
            .map { Finding(rule: "private-\($0.kind.rawValue)", severity: $0.severity, path: $0.path,
                           detail: ($0.layer.map { "\($0): " } ?? "") + $0.reasons.joined(separator: "; "), digest: $0.digest) }
    }

    /// A VLFS as `vlfs:NAME`; a layer when the text has a '/' (REPO/NAME[=VERSION]; image names
    /// cannot); else an image.
    private func scanTree(_ text: String) throws -> ScanTree {
        if text.hasPrefix("vlfs:") {
            let home = options.strataHome
            let state = try VLFSState(home: home, name: String(text.dropFirst(5)))
            let union = try Composition.union(of: state, home: home)
            let catalog = try options.catalog()
            return ScanTree(root: try Snapshot.manifest(of: union, name: state.name, catalog: catalog).filesystem, store: catalog.store)
        }
        guard let slash = text.lastIndex(of: "/") else {
            let catalog = try options.catalog()
            let version = try catalog.resolve(try ImageReference(parsing: text), for: .checkout, by: .current)
            return ScanTree(root: try catalog.manifest(of: version).filesystem, store: catalog.store)
        }
        let repository = try options.repository(String(text[..<slash]))
        let unit = text[text.index(after: slash)...].split(separator: "=", maxSplits: 1).map(String.init)
        guard let record = try repository.find(unit[0], version: unit.count > 1 ? unit[1] : nil) else {
            throw LayerError("\(text): no such layer in \(repository.path)")
        }
        return ScanTree(root: try repository.layerManifest(record).filesystem, store: repository.store)
    }
}

extension Finding.Severity: ExpressibleByArgument {}
