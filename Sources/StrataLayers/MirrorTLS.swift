import Foundation
import StrataHTTP
import StrataStore

/// Which servers a mirror believes over https, kept in the mirror (`tls`: `ca ca.pem`, `pin VALUE`),
/// so every later fetch for it (index refreshes, objects) checks the same: the repository's own CA (a
/// copy of the file given to `repo add --ca`, so moving the original breaks nothing) and/or a pinned
/// public key. A mirror without the file trusts the system's store (or `CURL_CA_BUNDLE`/`SSL_CERT_FILE`).
enum MirrorTLS {
    static let file = "tls"
    static let caCopy = "ca.pem"

    static func load(_ mirror: String) throws -> HTTPClient.Trust {
        guard let text = try? String(contentsOfFile: mirror + "/" + file, encoding: .utf8) else { return .environment }
        var trust = HTTPClient.Trust()
        for (index, line) in text.split(separator: "\n").enumerated() {
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            switch (words.first, words.count) {
            case ("ca", 2): trust.caFile = mirror + "/" + words[1]
            case ("pin", 2): trust.pinnedPublicKey = words[1]
            default: throw LayerError("\(mirror)/\(file):\(index + 1): expected 'ca FILE' or 'pin KEY', found '\(line)'")
            }
        }
        return trust
    }

    /// Records `caFile` (copied) and `pin` for the mirror at `mirror`; nothing when both are nil.
    static func save(caFile: String?, pin: String?, in mirror: String) throws {
        guard caFile != nil || pin != nil else { return }
        try makeDirectories(mirror)
        var lines: [String] = []
        if let caFile {
            guard let bytes = FileManager.default.contents(atPath: caFile), String(decoding: bytes, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw LayerError("--ca \(caFile): not a readable PEM file of certificates")
            }
            try AtomicFile.write(Array(bytes), to: mirror + "/" + caCopy)
            lines.append("ca \(caCopy)")
        }
        if let pin { lines.append("pin \(pin)") }
        try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: mirror + "/" + file)
    }
}
