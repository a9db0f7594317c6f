/// A SHA-256 digest, written in OCI form `sha256:<64 hex>`.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The 32 bytes as four big-endian words: cheap to hash, compare and copy.
    public let words: (UInt64, UInt64, UInt64, UInt64)

    public static let byteCount = 32

    public init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Digest.byteCount)
        func word(_ i: Int) -> UInt64 { UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        words = (word(0), word(1), word(2), word(3))
    }

    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        let array = Array(bytes)
        self = array.withUnsafeBytes { Digest(bytes: $0) }
    }

    /// Parses `sha256:<hex>` or bare hex.
    public init?(_ text: some StringProtocol) {
        var hex = Substring(text)
        if hex.hasPrefix("sha256:") { hex = hex.dropFirst(7) }
        guard hex.utf8.count == 64 else { return nil }
        var values: [UInt64] = []
        var index = hex.startIndex
        for _ in 0..<4 {
            let end = hex.index(index, offsetBy: 16)
            guard let value = UInt64(hex[index..<end], radix: 16), hex[index..<end].allSatisfy(\.isHexDigit), hex[index..<end].lowercased() == hex[index..<end] else { return nil }
            values.append(value)
            index = end
        }
        words = (values[0], values[1], values[2], values[3])
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for word in [words.0, words.1, words.2, words.3] {
            withUnsafeBytes(of: word.bigEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    public var hex: String {
        [words.0, words.1, words.2, words.3].map { word in
            let s = String(word, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
    }

    public var description: String { "sha256:" + hex }

    /// The object's name beneath a store's `objects/sha256` directory (`ab/cdef…`, NUL-terminated),
    /// built on the stack: the FUSE daemon opens a blob by it on every open, without allocating.
    public func withObjectName<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 2 * Digest.byteCount + 2) { name in
            var next = 0
            func put(_ word: UInt64) {
                for shift in stride(from: 60, through: 0, by: -4) {
                    if next == 2 {
                        name[next] = 0x2F  // "/" after the fan-out directory
                        next += 1
                    }
                    let digit = CChar(truncatingIfNeeded: (word >> UInt64(shift)) & 0xF)
                    name[next] = digit < 10 ? 0x30 + digit : 0x61 - 10 + digit
                    next += 1
                }
            }
            put(words.0)
            put(words.1)
            put(words.2)
            put(words.3)
            name[next] = 0
            return try body(UnsafePointer(name.baseAddress!))
        }
    }

    public static func == (a: Digest, b: Digest) -> Bool { a.words == b.words }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
    public static func < (a: Digest, b: Digest) -> Bool { a.words < b.words }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let digest = Digest(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a sha256 digest: \(text)"))
        }
        self = digest
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
