import ArgumentParser
import Foundation
import StrataLayers
import StrataStore
import VLFS

struct PrivateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "private", abstract: "Inspect and repair a VLFS's private layer.",
        subcommands: [Revert.self])

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
                    guard reply.hasPrefix("ok") else { throw LayerError("\(path): \(reply)") }
                } else {
                    let union = try Union(stack: try Composition.stack(ldf: try state.ldf(), home: home, state: state),
                                          privateRoot: state.privateRoot, whiteoutDirectory: state.whiteouts)
                    _ = try union.revert(path)
                }
            }
        }
    }
}
