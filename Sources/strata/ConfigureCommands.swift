import ArgumentParser
import Foundation
import StrataLayers
import StrataLifecycle
import StrataStore
import Synchronization
import VLFS
import VLFSFuse

/// Configuration of a served VLFS: the transitions the daemon runs (at mount, at each update, after a
/// reset), one at a time under the daemon's change lock, and what the first one said, for the
/// `strata mount` that waits for it.
final class DaemonConfiguration: Sendable {
    private let union: Union
    private let fuse: FuseMount
    private let state: VLFSState
    private let home: StrataHome
    private let configurator: Mutex<Configurator>
    private let first = Mutex<String?>(nil)
    private let firstDone = NSCondition()

    init(union: Union, fuse: FuseMount, state: VLFSState, home: StrataHome, mountpoint: String) throws {
        self.union = union
        self.fuse = fuse
        self.state = state
        self.home = home
        configurator = Mutex(try Configurator(stateDirectory: state.directory, mountpoint: mountpoint))
    }

    /// Moves the mounted VLFS to `layers` and configures them; a reply line (`ok …` with the steps run,
    /// `;`-separated, and the paths changed). Callers hold the daemon's change lock.
    func transition(to layers: [SharedLayer]) -> String {
        let previous = union.stack.layers.filter { $0.kind == .software }.map(\.installed)
        var changed = 0
        do {
            try configurator.withLock { configurator in
                // A configuration layer above another holds the later configuration of a layer.
                var configured: [String: ConfigurationState.Record] = [:]
                for layer in layers.filter({ $0.kind == .config }).reversed() {
                    configured.merge(ConfigurationState.configuredLayers(layer.metadata)) { _, upper in upper }
                }
                try configurator.transition(
                    from: previous, to: layers.filter { $0.kind == .software }.map(\.installed),
                    stackShown: Set(union.stack.layers.filter { $0.kind != .generated }.map(\.digest)) == Set(layers.map(\.digest)),
                    configuredByLayers: configured, home: home,
                    swap: { configuration in
                        let paths = try union.replaceStack(try Composition.stack(layers: layers, home: home, state: state, configuration: configuration))
                        fuse.invalidate(paths: paths)
                        changed += paths.count
                    },
                    revert: { paths in
                        for path in paths {
                            let reverted = try union.revert(path)
                            fuse.invalidate(paths: reverted)
                        }
                    })
            }
            let steps = configurator.withLock { $0.steps.map(\.description) }
            return "ok \(changed) paths changed" + (steps.isEmpty ? "" : "; " + steps.joined(separator: "; "))
        } catch {
            return "error: \(error)"
        }
    }

    /// Forgets how far the layers were configured (a reset emptied the private layer, where their
    /// configuration was), so that the next transition configures them all again.
    func forget() throws {
        try configurator.withLock { try $0.forget() }
    }

    /// Runs the first transition (`run`, which takes the daemon's change lock) once the mount answers,
    /// and lets `waitForFirst` callers go.
    func configureAtMount(mountpoint: String, run: @escaping @Sendable () -> String) {
        Thread { [self] in
            for _ in 0..<600 where !MountTable.isMounted(mountpoint) { usleep(10_000) }
            let reply = run()
            firstDone.lock()
            first.withLock { $0 = reply }
            firstDone.broadcast()
            firstDone.unlock()
        }.start()
    }

    /// What the first transition replied, once it has run.
    func waitForFirst() -> String {
        firstDone.lock()
        defer { firstDone.unlock() }
        while true {
            if let reply = first.withLock({ $0 }) { return reply }
            firstDone.wait()
        }
    }
}

struct Configure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how far each layer of a VLFS is configured.",
        discussion: """
            A layer's configuration scripts run when it enters or leaves the VLFS (at mount, at each update); \
            Debian packages are configured by dpkg inside the VLFS. A layer whose script failed stays \
            half-installed or half-configured and is tried again at the next mount or update \
            (`strata update NAME` tries at once). Script output is in $STRATA_HOME/vlfs/NAME/configure.log.
            """)
    @OptionGroup var options: HomeOptions
    @Argument(help: "The VLFS's name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    struct Row: Encodable {
        let layer: String, version: String, state: String, configuredVersion: String?, problem: String?
    }

    func run() throws {
        let state = try VLFSState(home: options.strataHome, name: name)
        let configuration = try ConfigurationState.load(state.configuration)
        let rows = configuration.records.values.sorted { $0.name < $1.name }.map {
            Row(layer: $0.name, version: $0.version, state: $0.phase.rawValue, configuredVersion: $0.configuredVersion, problem: $0.problem)
        }
        if json { return try printJSON(rows) }
        for row in rows {
            print("\(row.layer) \(row.version) \(row.state)" + (row.problem.map { ": \($0)" } ?? ""))
        }
        if rows.isEmpty { print("(nothing configured yet)") }
    }
}

/// Entry points of this program for its own use, not for users.
struct Internal: ParsableCommand {
    static let configuration = CommandConfiguration(shouldDisplay: false, subcommands: [SandboxStage.self])

    struct SandboxStage: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "sandbox", abstract: "Run a program inside a mounted VLFS, in the configuration sandbox.")
        @Flag var inside = false
        @Option var root: String
        @Option var scripts: String
        @Argument(parsing: .postTerminator) var program: [String]

        func run() throws {
            guard !program.isEmpty else { throw ValidationError("no program to run") }
            if inside { Sandbox.enter(root: root, scripts: scripts, program: program) }
            throw ExitCode(try Sandbox.run(root: root, scripts: scripts, program: program))
        }
    }
}
