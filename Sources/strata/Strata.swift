import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

@main
struct Strata: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Layered union filesystems from a content-addressed layer repository.",
        subcommands: [RepoCommand.self, LayerCommand.self, LDFCommand.self, Mount.self, Umount.self, Update.self, PrivateCommand.self,
                      TemplateCommand.self, Provision.self, ApplianceCommand.self, BootCommand.self, FleetCommand.self, MirrorCommand.self,
                      ImageCommand.self, ImportCommand.self, ExportCommand.self, Search.self, Scan.self, GC.self, Push.self, Pull.self, Fsck.self, Configure.self, Internal.self])
}

/// Options every verb takes.
struct HomeOptions: ParsableArguments {
    @Option(help: "The Strata home (default: $STRATA_HOME, else /var/lib/strata).")
    var home: String?

    var strataHome: StrataHome { StrataHome(explicit: home) }

    /// Opens a repository given by name (in the home's configuration) or by path; a served one as its mirror.
    func repository(_ nameOrPath: String) throws -> Repository {
        try strataHome.repository(nameOrPath)
    }
}

/// Shows progress on stderr when it is a terminal, one rewritten line.
struct Progress {
    let enabled = isatty(STDERR_FILENO) != 0

    func show(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// Shows how far fetching a layer into a mirror has come; clears the line when it is done.
    var fetchObserver: FetchObserver {
        { fetch in
            let megabytes = { (bytes: Int64) in String(format: "%.1f", Double(bytes) / 1_000_000) }
            let total = fetch.totalObjects > 0 ? "\(fetch.objects)/\(fetch.totalObjects) objects, \(megabytes(fetch.bytes))/\(megabytes(fetch.totalBytes)) MB"
                : "\(fetch.objects) objects"
            fetch.totalObjects > 0 && fetch.objects == fetch.totalObjects ? finish() : show("fetching \(fetch.layer): \(total)")
        }
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
