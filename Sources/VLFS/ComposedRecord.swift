import StrataStore

/// What a running daemon composed: recorded at its mount and after every update, so that fleet
/// status tells what a mounted VLFS runs without asking its daemon, and which LDF changes it has not taken.
extension VLFSState {
    public var composedRecord: String { directory + "/composed" }

    public func recordComposed(_ stack: LayerStack) throws {
        // The generated dpkg database follows the others: no LDF names it.
        try AtomicFile.write(stack.layers.filter { $0.kind != .generated }.map { "\($0.repository)/\($0.label)\n" }.joined(), to: composedRecord)
    }

    /// `REPO/NAME VERSION` per layer, top to bottom; nil if no daemon ever composed this VLFS.
    public func composed() -> [String]? {
        (try? String(contentsOfFile: composedRecord, encoding: .utf8)).map { $0.split(separator: "\n").map(String.init) }
    }
}
