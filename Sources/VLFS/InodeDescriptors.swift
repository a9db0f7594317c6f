import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Open descriptors by node, for a mount whose kernel opens regular files itself (FUSE "no open"): it
/// sends no OPEN nor RELEASE, and every READ, WRITE or FSYNC names only the inode (file handle 0). A
/// shared file's slot holds its blob (read-only), a private file's the file itself (read-write where
/// that works).
///
/// Bounded: past `capacity` slots, the least recently used quarter of the idle ones is closed. A slot
/// is lent for the length of one request (`borrow` ... `giveBack`), and a slot dropped or evicted while
/// lent is closed only when its last borrower gives it back: its number cannot be reused under a reader.
/// A pinned slot (a file unlinked while the kernel holds it) is never evicted; it goes with its node.
/// A hit costs two short lock sections and no allocation.
public final class InodeDescriptors: Sendable {
    /// A descriptor lent for one request.
    public struct Loan: Sendable {
        let inode: UInt64
        public let descriptor: Int32
        public let isShared: Bool
    }

    private struct Slot {
        var descriptor: Int32
        var isShared: Bool
        var isWritable: Bool
        var users = 0
        var lastUse: UInt64 = 0
        /// Set for a file unlinked while the kernel holds it: what it showed then, kept until FORGET.
        var unlinkedAttributes: stat?
    }

    private struct State {
        var slots: [UInt64: Slot] = [:]
        /// Descriptors dropped while lent, by how many borrowers still hold them.
        var retiring: [Int32: Int] = [:]
        var clock: UInt64 = 0

        /// Takes a slot out of the table, returning its descriptor if nobody holds it (to close).
        mutating func retire(_ inode: UInt64, pinned: borrowing Atomic<Int>) -> Int32? {
            guard let slot = slots.removeValue(forKey: inode) else { return nil }
            if slot.unlinkedAttributes != nil { pinned.subtract(1, ordering: .relaxed) }
            if slot.users == 0 { return slot.descriptor }
            retiring[slot.descriptor] = slot.users
            return nil
        }
    }

    private let state = Mutex(State())
    let capacity: Int
    /// On for a mount whose kernel opens files itself: only then must an unlinked file keep a slot.
    public let keepsUnlinkedFiles = Atomic<Bool>(false)
    /// How many slots are pinned: while none are, attributes need not look here.
    private let pinned = Atomic<Int>(0)

    init(capacity: Int) { self.capacity = capacity }

    /// The slot of `inode`, lent, if it has one (and, when `writable`, one open for writing).
    func borrow(_ inode: UInt64, writable: Bool) -> Loan? {
        state.withLock { state in
            state.clock &+= 1
            guard let index = state.slots.index(forKey: inode), state.slots.values[index].isWritable || !writable else { return nil }
            state.slots.values[index].users += 1
            state.slots.values[index].lastUse = state.clock
            let slot = state.slots.values[index]
            return Loan(inode: inode, descriptor: slot.descriptor, isShared: slot.isShared)
        }
    }

    /// Enters a descriptor just opened for `inode` and lends it. A slot another request entered
    /// meanwhile wins when it serves as well (the new descriptor is closed); one it replaces (a shared
    /// blob replaced by the copy-up that a write made) is retired.
    func insert(_ inode: UInt64, descriptor: Int32, isShared: Bool, isWritable: Bool, lend: Bool = true) -> Loan {
        var closing: [Int32] = []
        let loan = state.withLock { state -> Loan in
            state.clock &+= 1
            if let index = state.slots.index(forKey: inode), state.slots.values[index].isWritable || !isWritable {
                closing.append(descriptor)
                if lend { state.slots.values[index].users += 1 }
                let slot = state.slots.values[index]
                return Loan(inode: inode, descriptor: slot.descriptor, isShared: slot.isShared)
            }
            if let idle = state.retire(inode, pinned: pinned) { closing.append(idle) }
            state.slots[inode] = Slot(descriptor: descriptor, isShared: isShared, isWritable: isWritable, users: lend ? 1 : 0, lastUse: state.clock)
            if state.slots.count > capacity { closing += evictIdle(&state) }
            return Loan(inode: inode, descriptor: descriptor, isShared: isShared)
        }
        for descriptor in closing { close(descriptor) }
        return loan
    }

    /// The least recently used quarter of the idle, unpinned slots (a sort per `capacity / 4` inserts).
    private func evictIdle(_ state: inout State) -> [Int32] {
        let idle = state.slots.filter { $0.value.users == 0 && $0.value.unlinkedAttributes == nil }
        return idle.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(max(1, capacity / 4)).map { inode, slot in
            state.slots[inode] = nil
            return slot.descriptor
        }
    }

    /// Ends a loan; a retired descriptor closes with its last borrower.
    public func giveBack(_ loan: Loan) {
        let closing = state.withLock { state -> Int32? in
            if let index = state.slots.index(forKey: loan.inode), state.slots.values[index].descriptor == loan.descriptor {
                state.slots.values[index].users -= 1
                return nil
            }
            guard let users = state.retiring[loan.descriptor] else { return nil }
            if users > 1 {
                state.retiring[loan.descriptor] = users - 1
                return nil
            }
            state.retiring[loan.descriptor] = nil
            return loan.descriptor
        }
        if let closing { close(closing) }
    }

    /// Drops the slot of `inode` (its file changed: copied up, reverted) unless pinned, or with
    /// `evenPinned` (the kernel forgot the node).
    func drop(_ inode: UInt64, evenPinned: Bool = false) {
        let closing = state.withLock { state -> Int32? in
            guard let slot = state.slots[inode], evenPinned || slot.unlinkedAttributes == nil else { return nil }
            return state.retire(inode, pinned: pinned)
        }
        if let closing { close(closing) }
    }

    /// Drops every unpinned slot, or only the shared files' (a live update changed the stack).
    func dropAll(sharedOnly: Bool) {
        let closing = state.withLock { state -> [Int32] in
            let doomed = state.slots.filter { $0.value.unlinkedAttributes == nil && (!sharedOnly || $0.value.isShared) }.keys
            return doomed.compactMap { state.retire($0, pinned: pinned) }
        }
        for descriptor in closing { close(descriptor) }
    }

    /// Keeps the slot of `inode`, if it has one, until its node is forgotten, showing `attributes`
    /// (`pinnedAttributes`): its name went, or now names another file, while the kernel holds it.
    /// Returns whether it had one.
    @discardableResult
    func pin(_ inode: UInt64, attributes: stat) -> Bool {
        state.withLock { state in
            guard let index = state.slots.index(forKey: inode) else { return false }
            if state.slots.values[index].unlinkedAttributes == nil { pinned.add(1, ordering: .relaxed) }
            state.slots.values[index].unlinkedAttributes = attributes
            return true
        }
    }

    /// What a pinned file shows: its attributes when pinned, with a private file's current size and times.
    func pinnedAttributes(of inode: UInt64) -> stat? {
        guard pinned.load(ordering: .relaxed) > 0, let loan = borrow(inode, writable: false) else { return nil }
        defer { giveBack(loan) }
        guard var attributes = state.withLock({ $0.slots[inode]?.unlinkedAttributes }) else { return nil }
        if !loan.isShared {
            let number = attributes.st_ino
            guard fstat(loan.descriptor, &attributes) == 0 else { return nil }
            attributes.st_ino = number
        }
        attributes.st_nlink = 0
        return attributes
    }

    /// How many slots are open (for tests and the daemon's statistics).
    public var count: Int { state.withLock { $0.slots.count } }
}
