import StrataStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Opens of shared files whose blob is opened at their first read, not at the open: a warm re-read of
/// a file the kernel keeps cached (`keep_cache`) sends OPEN and RELEASE and no READ, and so costs no
/// system call. Each open keeps the layer and entry it resolved to, so it reads the blob it opened
/// whatever the stack becomes; a live update opens every blob still pending (`openAll`), since the
/// layers it drops may be collected while the file stays open. Ids are small and reused, as
/// descriptor numbers are.
final class DeferredBlobs: Sendable {
    private struct Pending {
        let layer: SharedLayer
        let entry: TreeEntry
        var descriptor: Int32?
    }

    private struct State {
        var opens: [Pending?] = []
        var free: [Int] = []
    }

    private let state = Mutex(State())

    /// Records an open of `entry` in `layer`; its id, from 1.
    func add(_ layer: SharedLayer, _ entry: TreeEntry) -> UInt64 {
        state.withLock { state in
            let pending = Pending(layer: layer, entry: entry)
            if let index = state.free.popLast() {
                state.opens[index] = pending
                return UInt64(index + 1)
            }
            state.opens.append(pending)
            return UInt64(state.opens.count)
        }
    }

    /// The blob of open `id`, opened at the first call; it stays open until `remove`.
    func descriptor(_ id: UInt64) throws(FSError) -> Int32 {
        let index = Int(id) - 1
        guard let pending = state.withLock({ state in state.opens.indices.contains(index) ? state.opens[index] : nil }) else { throw FSError(EBADF) }
        if let descriptor = pending.descriptor { return descriptor }
        guard let kept = keep(try pending.layer.openBlob(pending.entry), for: pending.entry, at: index) else { throw FSError(EBADF) }
        return kept
    }

    /// Stores a blob just opened for the open at `index`, unless another read stored one first (then
    /// that one is used) or the open is gone (then nil); a blob not stored is closed. An id reused
    /// meanwhile by an open of the same blob takes it: the bytes are the same.
    private func keep(_ opened: Int32, for entry: TreeEntry, at index: Int) -> Int32? {
        let kept = state.withLock { state -> Int32? in
            guard let pending = state.opens[index], pending.entry.digest == entry.digest else { return -1 }
            if let existing = pending.descriptor { return existing }
            state.opens[index]!.descriptor = opened
            return nil
        }
        guard let kept else { return opened }
        close(opened)
        return kept >= 0 ? kept : nil
    }

    /// Ends open `id`, closing its blob if it was read.
    func remove(_ id: UInt64) {
        let index = Int(id) - 1
        let descriptor = state.withLock { state -> Int32? in
            guard state.opens.indices.contains(index), let pending = state.opens[index] else { return nil }
            state.opens[index] = nil
            state.free.append(index)
            return pending.descriptor
        }
        if let descriptor { close(descriptor) }
    }

    /// Opens every blob still pending (before a live update lets their layers go). One that cannot be
    /// opened now stays pending, and its read tries again.
    func openAll() {
        let pending = state.withLock { state in state.opens.indices.filter { state.opens[$0] != nil && state.opens[$0]!.descriptor == nil } }
        for index in pending {
            guard let open = state.withLock({ $0.opens[index] }), open.descriptor == nil,
                  let opened = try? open.layer.openBlob(open.entry) else { continue }
            _ = keep(opened, for: open.entry, at: index)
        }
    }
}
