import CLinux

/// A map that keeps what was used recently, in bounded memory: two generations, the older dropped
/// whole (and its memory handed back) when the newer fills up, and a hit in the older moves the
/// entry forward. Nothing per entry to maintain (no recency list), so a lookup costs what a
/// dictionary's does. Not thread-safe: it lives inside its owner's lock.
public struct BoundedCache<Key: Hashable, Value> {
    private var recent: [Key: Value] = [:]
    private var older: [Key: Value] = [:]
    private var recentCost = 0
    /// The cost one generation may hold (entries, or what `insert` is told each one costs).
    public let capacity: Int

    public init(capacity: Int) { self.capacity = capacity }

    public mutating func value(_ key: Key, cost: (Value) -> Int = { _ in 1 }) -> Value? {
        if let value = recent[key] { return value }
        guard let value = older.removeValue(forKey: key) else { return nil }
        insert(value, for: key, cost: cost(value))
        return value
    }

    public mutating func insert(_ value: Value, for key: Key, cost: Int = 1) {
        if recentCost + cost > capacity && !recent.isEmpty {
            older = recent
            recent = [:]
            recentCost = 0
            // What the dropped generation held goes back to the system (malloc keeps freed memory).
            malloc_trim(0)
        }
        if recent.updateValue(value, forKey: key) == nil { recentCost += cost }
    }

    public mutating func removeValue(forKey key: Key) {
        recent[key] = nil
        older[key] = nil
    }

    public mutating func removeAll() {
        recent = [:]
        older = [:]
        recentCost = 0
    }
}
