/// Little helpers for the manifests' binary encoding: LEB128 varints and length-prefixed bytes.
struct BinaryWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ value: some BinaryInteger) { varint(UInt64(value)) }

    mutating func signed(_ value: Int64) { varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func data(_ value: some Collection<UInt8>) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ value: String) { data(value.utf8) }

    mutating func digest(_ value: Digest) {
        for word in [value.words.0, value.words.1, value.words.2, value.words.3] {
            withUnsafeBytes(of: word.bigEndian) { bytes.append(contentsOf: $0) }
        }
    }
}

/// Reads what `BinaryWriter` wrote, bounds-checked: a truncated or corrupt manifest throws, never traps.
struct BinaryReader: ~Copyable {
    let base: UnsafeRawBufferPointer
    var offset = 0
    let what: String

    init(_ base: UnsafeRawBufferPointer, what: String) {
        self.base = base
        self.what = what
    }

    var atEnd: Bool { offset == base.count }

    func corrupt(_ detail: String) -> StoreError {
        StoreError("\(what): corrupt manifest (\(detail) at byte \(offset))")
    }

    mutating func byte() throws -> UInt8 {
        guard offset < base.count else { throw corrupt("truncated") }
        defer { offset += 1 }
        return base[offset]
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < base.count else { throw corrupt("truncated varint") }
            let b = base[offset]
            offset += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw corrupt("oversized varint") }
        }
    }

    mutating func uint32() throws -> UInt32 {
        let value = try varint()
        guard value <= UInt32.max else { throw corrupt("value out of range") }
        return UInt32(value)
    }

    mutating func signed() throws -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1)
    }

    mutating func bytes() throws -> UnsafeRawBufferPointer {
        let count = Int(try varint())
        guard count <= base.count - offset else { throw corrupt("truncated field") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: base[offset..<(offset + count)])
    }

    mutating func string() throws -> String {
        let raw = try bytes()
        guard let text = String(validating: raw, as: UTF8.self) else { throw corrupt("invalid UTF-8") }
        return text
    }

    mutating func digest() throws -> Digest {
        guard base.count - offset >= Digest.byteCount else { throw corrupt("truncated digest") }
        defer { offset += Digest.byteCount }
        return Digest(bytes: UnsafeRawBufferPointer(rebasing: base[offset..<(offset + Digest.byteCount)]))
    }
}

/// Every manifest starts with this magic, a format version, and its kind.
enum ManifestHeader {
    static let magic: [UInt8] = Array("STRM".utf8)
    static let version: UInt8 = 1

    static func write(_ kind: ManifestKind, into writer: inout BinaryWriter) {
        writer.bytes.append(contentsOf: magic)
        writer.byte(version)
        writer.byte(kind.rawValue)
    }

    static func read(_ expected: ManifestKind, from reader: inout BinaryReader) throws {
        let kind = try peekKind(&reader)
        guard kind == expected else { throw reader.corrupt("expected a \(expected) manifest, found \(kind)") }
    }

    static func peekKind(_ reader: inout BinaryReader) throws -> ManifestKind {
        for expected in magic where try reader.byte() != expected { throw reader.corrupt("not a Strata manifest") }
        let version = try reader.byte()
        guard version == Self.version else { throw reader.corrupt("unsupported manifest version \(version)") }
        guard let kind = ManifestKind(rawValue: try reader.byte()) else { throw reader.corrupt("unknown manifest kind") }
        return kind
    }
}

public enum ManifestKind: UInt8, Sendable, CustomStringConvertible {
    case tree = 1, layer = 2, image = 3, paths = 4

    public var description: String {
        switch self {
        case .tree: "tree"
        case .layer: "layer"
        case .image: "image"
        case .paths: "path list"
        }
    }

    /// The kind of manifest these bytes hold, or nil when they are not a manifest (a blob).
    public static func of(_ bytes: [UInt8]) -> ManifestKind? {
        bytes.withUnsafeBytes { raw in
            var reader = BinaryReader(raw, what: "object")
            return try? ManifestHeader.peekKind(&reader)
        }
    }
}
