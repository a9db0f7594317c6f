import ArgumentParser
import Foundation
import Synchronization
import StrataLayers
import StrataStore
import VLFS

/// When a mount fetches the files of layers from served repositories.
enum FetchMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Serve at once; a file comes when first opened; the rest follows in the background.
    case lazy
    /// Serve at once; only what is opened is fetched.
    case onOpen = "on-open"
    /// Mirror every layer whole before serving (the mount then needs no server).
    case beforeMount = "before-mount"

    var depth: Repository.FetchDepth { self == .beforeMount ? .whole : .metadata }
}

/// The daemon's side of a VLFS whose layers are not all local: at mount it fetches, in bulk, the files
/// the appliance opened first at its last mount (`FirstOpens`), then (in `lazy` mode) every other
/// missing directory and file, sealing each layer in its mirror once whole; it records what this
/// mount opens first for the next one. Opens that come meanwhile fetch their own file (`RemoteObjects`,
/// which shares a download between an open and the background).
final class LazyFetching: Sendable {
    private let union: Union
    private let state: VLFSState
    private let home: StrataHome
    private let ldf: String
    private let mode: FetchMode
    /// A background pass is running; `again` asks it to run once more (the stack changed meanwhile).
    private let pass = Mutex<(running: Bool, again: Bool)>((false, false))
    private let firstOpensSaved = Atomic<Bool>(false)

    /// How long after mounting the daemon keeps recording what is opened.
    static let recordingWindow: Duration = .seconds(60)
    /// Connections of the bulk fetch of first opens, and of the background fetch of the rest (fewer,
    /// to leave the wire to opens).
    static let firstOpenConnections = 4
    static let backgroundConnections = 2

    init(union: Union, state: VLFSState, home: StrataHome, ldf: String, mode: FetchMode) {
        self.union = union
        self.state = state
        self.home = home
        self.ldf = ldf
        self.mode = mode
    }

    /// Starts the mount's work in the background: first opens, then the rest; and the recording window.
    func start() {
        Thread.detachNewThread { [self] in
            prefetchFirstOpens()
            layersChanged()
        }
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: Double(Self.recordingWindow.components.seconds))
            saveFirstOpens()
        }
    }

    /// After a live update: new layers may be remote.
    func layersChanged() {
        guard mode == .lazy else { return }
        let start = pass.withLock { pass -> Bool in
            if pass.running {
                pass.again = true
                return false
            }
            pass.running = true
            return true
        }
        guard start else { return }
        Thread.detachNewThread { [self] in
            while true {
                completeLayers()
                let more = pass.withLock { pass -> Bool in
                    if pass.again {
                        pass.again = false
                        return true
                    }
                    pass.running = false
                    return false
                }
                if !more { return }
            }
        }
    }

    /// Ends the recording (at the window's end or at unmount) and keeps what it saw.
    func saveFirstOpens() {
        guard !firstOpensSaved.exchange(true, ordering: .relaxed) else { return }
        let paths = union.firstOpens.finish()
        guard !paths.isEmpty else { return }
        do {
            try FirstOpens.save(paths, to: state.firstOpens)
        } catch {
            log("could not record the files opened first: \(error)")
        }
    }

    private func prefetchFirstOpens() {
        var wanted: [ObjectIdentifier: (remote: RemoteObjects, blobs: [(digest: Digest, size: UInt64)])] = [:]
        for path in FirstOpens.load(state.firstOpens) {
            guard let (layer, entry) = union.sharedEntry(at: path), entry.kind == .regular, let remote = layer.remote,
                  !layer.store.has(entry.digest!) else { continue }
            wanted[ObjectIdentifier(remote), default: (remote, [])].blobs.append((entry.digest!, entry.size))
        }
        for (remote, blobs) in wanted.values {
            let started = ContinuousClock.now
            let failures = remote.prefetch(blobs, connections: Self.firstOpenConnections)
            log("fetched \(blobs.count - failures.count) of \(blobs.count) files the last mount opened first from \(remote.repository.origin!) in \(ContinuousClock.now - started)"
                + (failures.isEmpty ? "" : "; first failure: \(failures[0])"))
        }
    }

    /// Fetches every missing file of the LDF's layers and seals each mirror's layers once whole.
    private func completeLayers() {
        do {
            let remote = try Composition.plan(ldf: ldf, home: home).filter { !$0.repository.isWhole($0.record) }
            for name in Set(remote.map(\.repositoryName)).sorted() {
                let units = remote.filter { $0.repositoryName == name }
                let repository = units[0].repository
                guard let objects = RemoteObjects.for(repository) else { continue }
                let started = ContinuousClock.now
                let blobs = try objects.missingBlobs(under: units.map { try repository.layerManifest($0.record).filesystem.digest! },
                                                     connections: Self.backgroundConnections)
                let failures = objects.prefetch(blobs.map { ($0.key, $0.value) }, connections: Self.backgroundConnections)
                guard failures.isEmpty else {
                    log("\(failures.count) files of \(units.count) layers from \(repository.origin!) could not be fetched (they are fetched when opened); first failure: \(failures[0])")
                    continue
                }
                // Sealing fetches what the store lacks: the last fetched objects must be in it first.
                objects.commitStaged()
                try repository.fetchLayers(units.map(\.record))
                log("\(units.count) layers from \(repository.origin!) are local: \(blobs.count) files fetched in the background in \(ContinuousClock.now - started)")
            }
        } catch {
            log("completing the layers of \(state.name) failed: \(error)")
        }
    }

    private func log(_ message: String) {
        FileHandle.standardError.write(Data("strata: \(state.name): \(message)\n".utf8))
    }
}
