import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Descriptors (O_PATH) of the private layer's recently used directories, by path, so that a request
/// on a name acts with one `*at()` call on its directory's descriptor instead of resolving the whole
/// path again each time (openat2, the call, close).
///
/// A descriptor follows its directory wherever that moves, so a path is forgotten, with everything
/// beneath it, by every change that moves or removes a directory of the private layer (rename, rmdir,
/// revert, reset) before that change is answered; a descriptor opened while such a change ran serves
/// its one request and is not kept (`generation`). Nothing else changes the private layer while it
/// is mounted: the appliance reaches it only through the daemon. What is held is always a directory
/// opened beneath the layer's root without following a symlink, so a stale entry could at worst name
/// another directory of the layer, or a removed one, never a place outside it.
///
/// A descriptor is lent for one call; one forgotten while lent is closed by its last borrower, so its
/// number cannot be reused under a request. Bounded: past `capacity`, the least recently used idle one goes.
final class PrivateDirectories: Sendable {
    private struct Slot {
        var descriptor: Int32
        var users: Int
        var lastUse: UInt64
    }

    private struct State {
        var slots: [String: Slot] = [:]
        /// Forgotten while lent: descriptor → borrowers left.
        var retiring: [Int32: Int] = [:]
        var clock: UInt64 = 0
        /// Counts `forget`s: a descriptor opened across one may name what its path no longer does.
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    deinit {
        for slot in state.withLock({ $0.slots.values }) { close(slot.descriptor) }
    }

    /// Runs `body` with the directory at `path` (not the root), lent if held, else opened by `open`
    /// (a descriptor or -errno) and kept.
    func with<T>(_ path: String, open: () -> Int32, _ body: (Int32) throws(FSError) -> T) throws(FSError) -> T {
        let (held, generation) = state.withLock { state -> (Int32?, UInt64) in
            state.clock &+= 1
            guard let index = state.slots.index(forKey: path) else { return (nil, state.generation) }
            state.slots.values[index].users += 1
            state.slots.values[index].lastUse = state.clock
            return (state.slots.values[index].descriptor, state.generation)
        }
        if let held {
            defer { giveBack(path, held) }
            return try body(held)
        }
        let opened = try FSError.opened(open())
        let (kept, evicted) = state.withLock { state -> (Bool, Int32?) in
            guard state.generation == generation, state.slots[path] == nil else { return (false, nil) }
            state.clock &+= 1
            state.slots[path] = Slot(descriptor: opened, users: 1, lastUse: state.clock)
            guard state.slots.count > capacity,
                  let oldest = state.slots.lazy.filter({ $0.value.users == 0 }).min(by: { $0.value.lastUse < $1.value.lastUse }) else { return (true, nil) }
            state.slots[oldest.key] = nil
            return (true, oldest.value.descriptor)
        }
        if let evicted { close(evicted) }
        defer { if kept { giveBack(path, opened) } else { close(opened) } }
        return try body(opened)
    }

    private func giveBack(_ path: String, _ descriptor: Int32) {
        let closing = state.withLock { state -> Bool in
            if let index = state.slots.index(forKey: path), state.slots.values[index].descriptor == descriptor {
                state.slots.values[index].users -= 1
                return false
            }
            guard let users = state.retiring.removeValue(forKey: descriptor) else { return false }
            if users > 1 { state.retiring[descriptor] = users - 1 }
            return users == 1
        }
        if closing { close(descriptor) }
    }

    /// Forgets the directory at `path` and every one beneath it ("": all of them).
    func forget(under path: String) {
        let closing = state.withLock { state -> [Int32] in
            state.generation &+= 1
            let prefix = path + "/"
            let doomed = state.slots.keys.filter { path.isEmpty || $0 == path || $0.hasPrefix(prefix) }
            return doomed.compactMap { key in
                guard let slot = state.slots.removeValue(forKey: key) else { return nil }
                if slot.users == 0 { return slot.descriptor }
                state.retiring[slot.descriptor] = slot.users
                return nil
            }
        }
        for descriptor in closing { close(descriptor) }
    }

    /// How many directories are held (for tests).
    var count: Int { state.withLock { $0.slots.count } }
}
