import Foundation
import StrataLayers
import VLFS

/// What machines cost as layers against what they cost as copies: VM2Docker's storage tables (its
/// Tables 5.4–5.10), for machines imported into one repository. Each machine is an LDF; a layer two
/// machines compose is stored once, so a machine's marginal cost is the layers no other machine of
/// the table uses (its configuration layer, once every package layer is shared).
public struct StorageTable: Sendable, Codable {
    public struct Machine: Sendable, Codable {
        public var name: String
        /// β: the bytes of the regular files the machine's composition shows (what a copy of it holds).
        public var files: UInt64
        /// DI_1: the bytes of its software (package) layers.
        public var packageLayers: UInt64
        /// DI_3: the bytes of its configuration layers.
        public var configuration: UInt64
        /// The bytes of the layers no other machine of the table uses: what adding this machine costs.
        public var own: UInt64
        /// χ: how much less the machine costs as layers than as a copy, in percent.
        public var reduction: Double
    }

    public var machines: [Machine]
    /// Σβ: the machines as copies.
    public var files: UInt64
    /// Φ: every layer the machines compose, each once.
    public var layers: UInt64
    /// How much less the machines take as layers than as copies, in percent.
    public var saved: Double

    /// Composes each LDF (bare: its layers, no private layer) to measure it; `scratch` holds the
    /// empty private layers.
    public init(ldfs: [String], home: StrataHome, scratch: String) throws {
        var uses: [String: Int] = [:]
        var planned: [[Composition.PlannedLayer]] = []
        for ldf in ldfs {
            let layers = try Composition.plan(ldf: ldf, home: home)
            planned.append(layers)
            for layer in Set(layers.map(\.record.digest.description)) { uses[layer, default: 0] += 1 }
        }
        var distinct: [String: UInt64] = [:]
        machines = try zip(ldfs, planned).map { ldf, layers in
            var machine = Machine(name: ((ldf as NSString).lastPathComponent as NSString).deletingPathExtension, files: 0, packageLayers: 0,
                                  configuration: 0, own: 0, reduction: 0)
            for layer in layers {
                let bytes = layer.record.bytes
                distinct[layer.record.digest.description] = bytes
                if Composition.kind(of: try layer.record.parsedMetadata()) == .config { machine.configuration += bytes } else { machine.packageLayers += bytes }
                if uses[layer.record.digest.description] == 1 { machine.own += bytes }
            }
            machine.files = try Self.fileBytes(of: BareUnion.of(try Composition.layers(ldf: ldf, home: home), scratch: scratch))
            machine.reduction = Self.percentLess(machine.own, than: machine.files)
            return machine
        }
        files = machines.reduce(0) { $0 + $1.files }
        layers = distinct.values.reduce(0, +)
        saved = Self.percentLess(layers, than: files)
    }

    private static func percentLess(_ part: UInt64, than whole: UInt64) -> Double {
        whole == 0 ? 0 : 100 * (1 - Double(part) / Double(whole))
    }

    /// The bytes of every regular file the union shows, each name counted (as a copy would hold them).
    private static func fileBytes(of union: Union) throws -> UInt64 {
        var total: UInt64 = 0
        var pending = [""]
        while let directory = pending.popLast() {
            for entry in try union.list(path: directory, withAttributes: true) {
                let path = directory.isEmpty ? entry.name : directory + "/" + entry.name
                if entry.type == UInt32(S_IFDIR) { pending.append(path) }
                if entry.type == UInt32(S_IFREG) { total += UInt64(entry.attributes?.st_size ?? 0) }
            }
        }
        return total
    }
}
