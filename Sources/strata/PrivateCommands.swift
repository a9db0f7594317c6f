import ArgumentParser
import Foundation
import StrataLayers
import StrataLifecycle
import StrataStore
import VLFS
import Forensics
import Mirage

struct PrivateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "private", abstract: "Inspect and repair a VLFS's private layer.",
        subcommands: [Status.self, Revert.self, Reset.self, PrivateMount.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every change in a VLFS's private layer, with the shared layer it shadows and its severity, most severe first.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The VLFS's name.") var name: String
        @Option(help: "A deny list: one content digest per line (optionally followed by a reason).") var deny: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let home = options.strataHome
            let changes = try PrivateStatus.changes(of: try VLFSState(home: home, name: name), home: home, catalog: try Catalog(home: home),
                                                    deny: try deny.map { try DenyList(file: $0) } ?? DenyList())
            if json { return try printJSON(changes) }
            for change in changes {
                let layer = change.layer.map { " [\($0)]" } ?? ""
                print("\(change.severity.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))\(change.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))\(change.path)\(layer): \(change.reasons.joined(separator: "; "))")
            }
        }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the private layer as evidence in the catalog, then swap in an empty one, without unmounting.",
            discussion: "Prints the archived private layer's identifier (the evidence image's digest) alone on the first line; 'private mount' takes it.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The VLFS's name.") var name: String

        func run() throws {
            let home = options.strataHome
            let state = try VLFSState(home: home, name: name)
            let answer = try VLFSRequests.perform("reset", state: state, home: home) { union, ldf in
                let reply = VLFSRequests.reset(union, state: state, home: home, ldf: ldf, invalidate: { _ in })
                // The layers' configuration went with the private layer: the next mount makes it again.
                if reply.hasPrefix("ok") { try? ConfigurationState().save(to: state.configuration) }
                return reply
            }
            for field in answer.split(separator: " ") { print(field) }
        }
    }

    struct PrivateMount: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mount", abstract: "Mount an archived private layer read-only, for forensics.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The VLFS's name.") var name: String
        @Argument(help: "The identifier 'private reset' printed.") var archived: String
        @Argument(help: "An existing, empty directory.") var mountpoint: String

        func run() throws {
            let version = try Catalog(home: options.strataHome).resolve(try ImageReference(parsing: archived))
            guard version.name == PrivateReset.evidenceName(name) else {
                throw LayerError("\(archived) is not an archived private layer of VLFS '\(name)' (it is image \(version.reference))")
            }
            let mount = try ImageMount.parse([archived, mountpoint, "--private-layer", "--home", options.strataHome.path])
            try mount.run()
        }
    }

    struct Revert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop the private copy and whiteouts of paths, so the shared originals show again.",
            discussion: "Acts through the running daemon (visible at once to processes using the mount), or on the state directly when none runs.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The VLFS's name.") var name: String
        @Argument(help: "Paths inside the VLFS.") var paths: [String]

        func run() throws {
            let home = options.strataHome
            let state = try VLFSState(home: home, name: name)
            for path in paths {
                if let reply = try ControlChannel.send("revert \(path)", to: state.controlSocket) {
                    guard reply.hasPrefix("ok") else { throw LayerError("\(path): \(ControlChannel.failure(reply))") }
                } else {
                    let union = try Composition.union(of: state, home: home)
                    _ = try union.revert(path)
                }
            }
        }
    }
}
