import ArgumentParser
import Foundation
import Forensics
import Mirage
import StrataLayers
import StrataStore
import VLFS

/// What the daemon and the offline fallback both do for `image snapshot` and `private reset`: one
/// implementation, called in the daemon (where the live union is) or on the VLFS's state directly.
enum VLFSRequests {
    static func snapshot(_ union: Union, state: VLFSState, home: StrataHome, image: String) -> String {
        reply {
            let catalog = try Catalog(home: home)
            let version = try catalog.checkin(manifest: try Snapshot.manifest(of: union, name: state.name, catalog: catalog), name: image)
            return "\(version.digest) \(version.reference)"
        }
    }

    /// The argument of a `reset` request that keeps the configuration state: a template's promotion
    /// carries the configuration into a configuration layer.
    static let keepConfiguration = "keep-configuration"

    static func reset(_ union: Union, state: VLFSState, home: StrataHome, ldf: String, depth: Repository.FetchDepth = .whole,
                      invalidate: ([String]) -> Void) -> String {
        reply {
            let (evidence, changed) = try PrivateReset.reset(union, state: state, catalog: try Catalog(home: home)) {
                try Composition.stack(ldf: ldf, home: home, state: state, depth: depth)
            }
            invalidate(changed)
            return "\(evidence.digest) \(evidence.reference)"
        }
    }

    private static func reply(_ body: () throws -> String) -> String {
        do { return "ok " + (try body()) } catch { return "error: \(error)" }
    }

    /// Sends a request to the running daemon, or runs it here on the VLFS's state when none runs.
    static func perform(_ request: String, state: VLFSState, home: StrataHome, offline: (Union, String) -> String) throws -> String {
        let reply: String
        if let answer = try ControlChannel.send(request, to: state.controlSocket) {
            reply = answer
        } else {
            let ldf = try state.ldf()
            let union = try Composition.union(of: state, home: home)
            reply = offline(union, ldf)
        }
        guard reply.hasPrefix("ok ") else { throw LayerError(ControlChannel.failure(reply)) }
        return String(reply.dropFirst(3))
    }
}

struct ImageSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Capture a VLFS (its layers, whiteouts and private layer) as a new version of an image.",
        discussion: "Prints the image digest alone on the first line. A mounted VLFS is captured by its daemon while changes wait.")
    @OptionGroup var options: HomeOptions
    @Argument(help: "The VLFS's name.") var vlfs: String
    @Option(help: "The image name to check the snapshot in as.") var image: String

    func run() throws {
        let home = options.strataHome
        let state = try VLFSState(home: home, name: vlfs)
        let answer = try VLFSRequests.perform("snapshot \(image)", state: state, home: home) { union, _ in
            VLFSRequests.snapshot(union, state: state, home: home, image: image)
        }
        for field in answer.split(separator: " ") { print(field) }
    }
}
