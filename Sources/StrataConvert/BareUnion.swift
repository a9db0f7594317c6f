import StrataStore
import VLFS

/// The union of shared layers by themselves: no private layer and no whiteouts, as a fresh mount of
/// them shows before anything is written.
enum BareUnion {
    /// Its empty private layer and whiteout directory are made in a new directory under `scratch`.
    static func of(_ layers: [SharedLayer], scratch: String) throws -> Union {
        let empty = try temporaryDirectory(in: scratch, prefix: "union-")
        try makeDirectories(empty + "/private")
        try makeDirectories(empty + "/whiteouts")
        let stack = try LayerStack(layers: layers, whiteoutDirectory: empty + "/whiteouts")
        return try Union(stack: stack, privateRoot: empty + "/private", whiteoutDirectory: empty + "/whiteouts")
    }
}
