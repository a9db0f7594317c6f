import Foundation
import StrataStore

/// The delta file: a magic line, the source and target image digests, the target's root entry, the
/// operations, the file contents, and a SHA-256 of everything before it, so that a damaged delta is
/// refused before it touches anything. Entries travel as one-entry tree manifests (the canonical
/// encoding every manifest uses); integers are 8-byte little-endian.
extension ImageDelta {
    static let magic = Array("STRATA-DELTA 1\n".utf8)

    private enum Code: UInt8 { case remove = 1, create, replace, setMetadata }

    public func encoded() -> [UInt8] {
        var out = ImageDelta.magic
        func integer(_ value: Int) { withUnsafeBytes(of: UInt64(value).littleEndian) { out.append(contentsOf: $0) } }
        func bytes(_ value: [UInt8]) {
            integer(value.count)
            out.append(contentsOf: value)
        }
        func entry(_ entry: TreeEntry, at path: String) {
            var named = entry
            named.name = path.split(separator: "/").last.map(String.init) ?? "root"
            bytes(Tree(entries: [named]).encoded())
        }
        out.append(contentsOf: source.bytes)
        out.append(contentsOf: target.bytes)
        entry(targetRoot, at: "")
        integer(operations.count)
        for operation in operations {
            switch operation {
            case .remove(let path):
                out.append(Code.remove.rawValue)
                bytes(Array(path.utf8))
            case .create(let path, let value), .replace(let path, let value), .setMetadata(let path, let value):
                let code: Code = switch operation {
                case .create: .create
                case .replace: .replace
                default: .setMetadata
                }
                out.append(code.rawValue)
                bytes(Array(path.utf8))
                entry(value, at: path)
            }
        }
        integer(blobs.count)
        for digest in blobs.keys.sorted() {
            out.append(contentsOf: digest.bytes)
            bytes(blobs[digest]!)
        }
        out.append(contentsOf: SHA256.hash(out).bytes)
        return out
    }

    /// Decodes a delta file, refusing it whole if its checksum, structure or any content digest is wrong.
    public init(decoding data: [UInt8], file: String) throws {
        func corrupt(_ why: String) -> CatalogError { CatalogError("\(file): not a valid Strata delta (\(why)); nothing was applied") }
        guard data.count >= ImageDelta.magic.count + 32, Array(data.prefix(ImageDelta.magic.count)) == ImageDelta.magic else {
            throw corrupt("no STRATA-DELTA header")
        }
        let body = data.dropLast(32)
        guard SHA256.hash(Array(body)) == Digest(bytes: data.suffix(32)) else { throw corrupt("checksum mismatch: the file is damaged") }
        var offset = ImageDelta.magic.count
        func take(_ count: Int) throws -> ArraySlice<UInt8> {
            guard count >= 0, count <= body.count - offset else { throw corrupt("truncated at byte \(offset)") }
            defer { offset += count }
            return body[offset..<offset + count]
        }
        func integer() throws -> Int {
            let raw = try take(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard raw <= UInt64(Int.max) else { throw corrupt("length out of range at byte \(offset)") }
            return Int(raw)
        }
        func bytes() throws -> [UInt8] { Array(try take(try integer())) }
        func digest() throws -> Digest { Digest(bytes: try take(32)) }
        func path() throws -> String {
            guard let text = String(validating: try bytes(), as: UTF8.self), (try? TreeBuilder.components(of: text, in: file)) != nil else {
                throw corrupt("a path is not valid")
            }
            return text
        }
        func entry() throws -> TreeEntry {
            guard let entry = (try? Tree(decoding: try bytes(), what: "\(file) entry"))?.entries.first else { throw corrupt("an entry does not decode") }
            return entry
        }
        source = try digest()
        target = try digest()
        var root = try entry()
        root.name = "."
        targetRoot = root
        operations = []
        for _ in 0..<(try integer()) {
            guard let code = Code(rawValue: try take(1).first!) else { throw corrupt("unknown operation at byte \(offset - 1)") }
            let path = try path()
            switch code {
            case .remove: operations.append(.remove(path))
            case .create: operations.append(.create(path, try entry()))
            case .replace: operations.append(.replace(path, try entry()))
            case .setMetadata: operations.append(.setMetadata(path, try entry()))
            }
        }
        blobs = [:]
        for _ in 0..<(try integer()) {
            let digest = try digest()
            let contents = try bytes()
            guard SHA256.hash(contents) == digest else { throw corrupt("the contents given for \(digest) hash differently") }
            blobs[digest] = contents
        }
        guard offset == body.count else { throw corrupt("trailing bytes") }
    }
}
