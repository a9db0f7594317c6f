import Foundation
import StrataLayers
@testable import StrataResolver
import StrataStore
import StrataTestSupport
import Testing

/// A home whose `debian` repository is the machine's apt indexes. It survives between runs, so
/// the suite's `.solv` cache is built once.
let debianHome: StrataHome = {
    let home = StrataHome(explicit: "/tmp/strata-test-debian-home-merged-usr")
    try? home.addRepository(name: "debian", location: "debian")
    return home
}()

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Resolutions of real Debian packages, checked by python3-apt rather than by libsolv.
@Suite(.serialized) struct DebianTests {
    static let targets = ["mariadb-server", "nginx", "apache2", "postgresql", "openssh-server", "python3", "perl", "git",
                          "curl", "rsyslog", "cron"]

    @Test(arguments: targets) func closureSatisfiesEveryRelation(target: String) throws {
        let scratch = try TemporaryDirectory()
        try scratch.write("app.ldf", "debian/\(target)\n")
        let resolved = try LDFEditor(home: debianHome).apply(.none, to: scratch.path + "/app.ldf")
        let units = resolved.resolution.units
        #expect(units.contains { $0.name == target && $0.isExplicit })
        #expect(units.contains { $0.name == "dpkg" } && units.contains { $0.name == "base-files" }, "the base set is included")
        #expect(units.allSatisfy { $0.debSHA256 != nil && $0.location == .debian })
        let listing = units.map { "\($0.name) \($0.version)\n" }.joined()
        try scratch.write("closure", listing)
        let check = try execute("/bin/sh", ["-c", "/usr/bin/python3 '\(packageRoot)/scripts/check-debian-closure.py' < '\(scratch.path)/closure'"])
        #expect(check.status == 0 && check.stdout == "ok \(units.count)\n", "\(check.stdout)\(check.stderr)")
    }

    /// A new home with an empty `debian` repository, and the resolution of `debian/hostname` in it
    /// (hostname and Debian's required base). The scratch directory holds the home: keep it.
    static func emptyHomeResolvingHostname() throws -> (TemporaryDirectory, StrataHome, Resolution) {
        let scratch = try TemporaryDirectory()
        let home = StrataHome(explicit: scratch.path + "/home")
        try home.addRepository(name: "debian", location: "debian")
        try scratch.write("app.ldf", "debian/hostname\n")
        return (scratch, home, try LDFEditor(home: home).apply(.none, to: scratch.path + "/app.ldf").resolution)
    }

    @Test func ensureImportedFetchesChecksAndImportsOnce() throws {
        let (scratch, home, resolution) = try Self.emptyHomeResolvingHostname()
        defer { withExtendedLifetime(scratch) {} }
        let unit = try #require(resolution.unit(named: "hostname"))
        let archive = DebianArchive(home: home)

        var forged = unit
        forged.debSHA256 = String(repeating: "0", count: 64)
        let error = #expect(throws: LayerError.self) { try archive.ensureImported(forged) }
        #expect(error?.description.contains("but the apt index states \(forged.debSHA256!) for hostname") == true, "\(String(describing: error))")
        #expect(try archive.repository().layers().isEmpty, "a download that fails its check is not imported")

        let record = try archive.ensureImported(unit)
        #expect(record.name == "hostname" && record.version == unit.version.description)
        #expect(try archive.ensureImported(unit) == record)
        // Composing only this unit: composing the whole resolution would download the base set.
        let composed = try Resolution(units: [unit]).composedUnits(home: home)
        #expect(composed.first?.record.digest == record.digest && composed.first?.repositoryPath == archive.repositoryPath)
        #expect(try Repository(at: archive.repositoryPath).layerManifest(record).metadata.contains("Layer: hostname"))
    }

    @Test func ensureImportedDownloadsTheMissingPackagesTogetherAndAnswersInOrder() throws {
        let (scratch, home, resolution) = try Self.emptyHomeResolvingHostname()
        defer { withExtendedLifetime(scratch) {} }
        // login has an epoch (1:…), which apt writes '%3a' in the file's name.
        let hostname = try #require(resolution.unit(named: "hostname")), login = try #require(resolution.unit(named: "login"))
        let debianutils = try #require(resolution.unit(named: "debianutils"))
        #expect(login.version.description.contains(":"))
        let archive = DebianArchive(home: home)
        let first = try archive.ensureImported(hostname)
        let records = try archive.ensureImported([login, hostname, debianutils])
        #expect(records.map(\.name) == ["login", "hostname", "debianutils"])
        #expect(records.map(\.version) == [login, hostname, debianutils].map(\.version.description))
        #expect(records[1] == first, "an imported package is not fetched again")
        #expect(Set(try archive.repository().layers().map(\.name)) == ["hostname", "login", "debianutils"])
    }

    @Test func cacheKeyNoticesChangedIndexes() throws {
        let scratch = try TemporaryDirectory()
        try scratch.write("lists/example_Packages", "Package: a\nVersion: 1\n")
        let key = try CacheKey(architecture: "amd64", indexFiles: [scratch.path + "/lists/example_Packages"], baseNames: ["a", "b"])
        #expect(key.isCurrent)
        #expect(CacheKey(parsing: key.text) == key)
        try scratch.write("lists/example_Packages", "Package: a\nVersion: 2\nDepends: b\n")
        #expect(!key.isCurrent)
    }

    @Test func baseNamesAreEssentialAndRequiredPackages() {
        let text = "Package: one\nEssential: yes\nPriority: required\n\nPackage: two\nPriority: optional\n\nPackage: three\nPriority: required\n\n"
        #expect(DebianArchive.baseNames(in: Array(text.utf8)) == ["one", "three"])
    }
}
