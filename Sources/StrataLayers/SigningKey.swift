import Foundation
import StrataStore

/// The text forms of repository signing keys: one line each, a type word and the raw key in base64 —
/// `strata-ed25519-private …` for the signer's secret, `strata-ed25519 …` for the public key that
/// homes trust. The type word keeps one from being used as the other.
public enum SigningKey {
    static let privateType = "strata-ed25519-private"
    static let publicType = "strata-ed25519"

    public static func line(_ key: Ed25519.PublicKey) -> String { "\(publicType) \(Data(key.raw).base64EncodedString())" }
    static func line(_ key: Ed25519.PrivateKey) -> String { "\(privateType) \(Data(key.raw).base64EncodedString())" }

    /// Writes a new private key at `path` (mode 0600) and its public key at `path.pub`, refusing to
    /// replace either. Returns the public key.
    public static func generate(at path: String) throws -> Ed25519.PublicKey {
        for file in [path, path + ".pub"] where FileManager.default.fileExists(atPath: file) {
            throw LayerError("\(file) exists; a key is not overwritten (remove it first)")
        }
        let key = try Ed25519.PrivateKey.generate()
        let publicKey = try key.publicKey()
        try AtomicFile.write(line(key) + "\n", to: path, mode: 0o600, replace: false)
        try AtomicFile.write(line(publicKey) + "\n", to: path + ".pub", replace: false)
        return publicKey
    }

    public static func readPrivate(_ path: String) throws -> Ed25519.PrivateKey {
        try Ed25519.PrivateKey(raw: parse(try read(path), type: privateType, file: path))
    }

    public static func readPublic(_ path: String) throws -> Ed25519.PublicKey {
        try Ed25519.PublicKey(raw: parse(try read(path), type: publicType, file: path))
    }

    /// A public key line given on the command line (`file` names where it came from in errors).
    public static func parsePublic(_ text: String, file: String) throws -> Ed25519.PublicKey {
        try Ed25519.PublicKey(raw: parse(text, type: publicType, file: file))
    }

    /// A key file's text; a key is one short line, so anything over 4 KiB is not one.
    private static func read(_ path: String) throws -> String {
        let bytes: [UInt8]
        do {
            bytes = try FileDescriptor.open(path, O_RDONLY).readAll(limit: 4096)
        } catch let error as SystemError {
            throw LayerError("\(path): cannot read the key file (\(String(cString: strerror(error.errno))))")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ParseError(file: path, line: nil, message: "not a key file (not UTF-8 text)") }
        return text
    }

    private static func parse(_ text: String, type: String, file: String) throws -> [UInt8] {
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 2 else {
            throw ParseError(file: file, line: nil, message: "expected one line '\(type) BASE64', found \(fields.count) words")
        }
        guard fields[0] == type else {
            let found = [privateType, publicType].contains(fields[0]) ? "a '\(fields[0])' key" : "'\(fields[0])'"
            throw ParseError(file: file, line: nil, message: "expected a '\(type)' key, found \(found)")
        }
        guard let raw = Data(base64Encoded: fields[1]), raw.count == Ed25519.keyLength else {
            throw ParseError(file: file, line: nil, message: "the key is not \(Ed25519.keyLength) bytes of base64")
        }
        return Array(raw)
    }
}
