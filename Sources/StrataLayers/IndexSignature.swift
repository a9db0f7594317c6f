import Foundation
import StrataStore

/// `index.sig`, the signature of a repository's `index.sqlite`: a control-file paragraph
///
///     Repository: stable
///     Index: sha256:…          (of the index file's bytes)
///     Serial: 7                (one more than the previous signature's)
///     Expires: 2027-01-01T00:00:00Z
///     Key: strata-ed25519 …    (the signer's public key, to say which key signed)
///     Signature: …             (ed25519, base64)
///
/// The signature covers the first five fields rendered exactly as above (`signedBytes`), so a
/// verifier re-renders what it parsed and needs no canonicalization rules beyond the field order.
public struct IndexSignature: Sendable {
    public static let fileName = "index.sig"

    public var repository: String
    public var index: Digest
    public var serial: UInt64
    public var expires: Date
    public var key: Ed25519.PublicKey
    public var signature: [UInt8]

    /// The bytes the signature covers.
    var signedBytes: [UInt8] {
        Array(ControlFile.paragraph([
            ("Repository", repository), ("Index", index.description), ("Serial", String(serial)),
            ("Expires", Self.format(expires)), ("Key", SigningKey.line(key)),
        ]).utf8)
    }

    public var text: String {
        String(decoding: signedBytes, as: UTF8.self) + ControlFile.render(name: "Signature", value: Data(signature).base64EncodedString())
    }

    /// Signs the index at `indexPath` for `repository`, valid until `expires`.
    public static func sign(indexPath: String, repository: String, serial: UInt64, expires: Date, with key: Ed25519.PrivateKey) throws -> IndexSignature {
        let digest = try SHA256.hash(reading: FileDescriptor.open(indexPath, O_RDONLY))
        var document = IndexSignature(repository: repository, index: digest, serial: serial,
                                      expires: Date(timeIntervalSince1970: expires.timeIntervalSince1970.rounded(.down)),
                                      key: try key.publicKey(), signature: [])
        document.signature = try key.sign(document.signedBytes)
        return document
    }

    private init(repository: String, index: Digest, serial: UInt64, expires: Date, key: Ed25519.PublicKey, signature: [UInt8]) {
        self.repository = repository
        self.index = index
        self.serial = serial
        self.expires = expires
        self.key = key
        self.signature = signature
    }

    /// Parses a signature document; `file` (a path or URL) names it in errors. Says nothing of validity.
    public init(parsing bytes: [UInt8], file: String) throws {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ParseError(file: file, line: nil, message: "not UTF-8 text") }
        let stanzas = try ControlFile.parse(text, file: file)
        guard stanzas.count == 1, let stanza = stanzas.first else {
            throw ParseError(file: file, line: nil, message: "expected one paragraph, found \(stanzas.count)")
        }
        let names = ["Repository", "Index", "Serial", "Expires", "Key", "Signature"]
        if let extra = stanza.fields.first(where: { field in !names.contains { $0.lowercased() == field.name.lowercased() } }) {
            throw ParseError(file: file, line: extra.line, message: "unknown field '\(extra.name)'")
        }
        func field<T>(_ name: String, _ convert: (String) throws -> T?) throws -> T {
            guard let value = stanza[name] else { throw ParseError(file: file, line: nil, message: "missing field '\(name)'") }
            guard let converted = try convert(value) else {
                throw ParseError(file: file, line: stanza.line(of: name), message: "invalid \(name) '\(value)'")
            }
            return converted
        }
        repository = try field("Repository") { $0.isEmpty ? nil : $0 }
        index = try field("Index") { Digest($0) }
        serial = try field("Serial") { UInt64($0) }
        expires = try field("Expires") { Self.parseDate($0) }
        key = try field("Key") { try SigningKey.parsePublic($0, file: file) }
        signature = try field("Signature") { Data(base64Encoded: $0).map(Array.init) }
    }

    /// The signature as a key would produce it: by that key, over these fields.
    func isSigned(by trusted: Ed25519.PublicKey) -> Bool {
        key == trusted && trusted.verifies(signature, of: signedBytes)
    }

    public static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    private static func parseDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.date(from: text)
    }
}
