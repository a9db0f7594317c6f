import Foundation
import StrataLayers
import StrataStore
import VLFS

/// The second initrd of a boot: the modules of the appliance's own kernel layer that the initramfs
/// needs before its VLFS is mounted (the NIC, the disk, FUSE), with their dependencies. Made by
/// `Boot/build-initramfs.sh --modules-only` from a checkout of the layer's `lib/modules`, once per
/// kernel layer (kept as `$STRATA_HOME/boot/modules-DIGEST.cpio.gz`, named by the layer manifest's
/// digest, so a kernel upgrade makes a new one and never reuses a stale one).
public struct KernelModules: Sendable {
    public let home: StrataHome
    /// `Boot/build-initramfs.sh`.
    public let builder: String

    public init(home: StrataHome, builder: String) {
        self.home = home
        self.builder = builder
    }

    /// The archive for the kernel that appliance `name` composes now (a request's word: checked to be
    /// a registered appliance before its name reaches a path).
    public func archive(forAppliance name: String, answers: BootAnswers) throws -> String {
        try StrataHome.checkName(name)
        let registry = try ApplianceRegistry(home: home)
        guard try registry.all().contains(where: { $0.name == name }) else { throw LayerError("no appliance '\(name)'") }
        guard let kernel = try answers.kernelLayer(in: try Composition.plan(ldf: registry.ldf(of: name), home: home)) else {
            throw LayerError("appliance '\(name)' composes no kernel")
        }
        return try archive(for: kernel.layer)
    }

    public func archive(for layer: Composition.PlannedLayer) throws -> String {
        let directory = home.path + "/boot"
        let archive = directory + "/modules-\(layer.record.digest.hex).cpio.gz"
        if FileManager.default.fileExists(atPath: archive) { return archive }
        try makeDirectories(directory)
        // One builder at a time: two machines booting the same new kernel wait for one archive.
        try FileLock.withExclusive(directory + "/modules.lock") {
            if FileManager.default.fileExists(atPath: archive) { return }
            let manifest = try layer.repository.layerManifest(layer.record)
            var lookup = TreeLookup(store: layer.repository.store)
            guard let modules = try lookup.entry(at: "lib/modules", under: manifest.filesystem)
                ?? lookup.entry(at: "usr/lib/modules", under: manifest.filesystem) else {
                throw LayerError("kernel layer \(layer.label) has no lib/modules")
            }
            let scratch = directory + "/modules-\(layer.record.digest.hex).tmp-\(getpid())"
            try? removeTree(scratch)
            try makeDirectories(scratch + "/lib")
            defer { try? removeTree(scratch) }
            try Checkout.run(modules, from: layer.repository.store, to: scratch + "/lib/modules")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = [builder, archive, "--modules-only", "--kernel", scratch]
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw LayerError("\(builder) failed (exit \(process.terminationStatus)) for kernel layer \(layer.label)")
            }
        }
        return archive
    }
}
