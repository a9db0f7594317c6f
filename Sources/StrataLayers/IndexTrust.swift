import Foundation
import StrataStore

/// What a home requires of a served repository's index before its mirror accepts it: a signature
/// (`index.sig`) by the key the home trusts for that name, over the fetched index's digest, not
/// expired, and not older than the signature the mirror accepted last — so neither a forged, a
/// frozen nor a replayed index gets in. Without a trusted key an index is accepted as served.
public struct IndexTrust: Sendable {
    /// The home's name for the repository, for messages.
    public var name: String
    public var key: Ed25519.PublicKey
    /// The name the signer must have given the repository, for a mirror that has accepted no signed
    /// index yet; afterwards the name the mirror accepted is required (one key may sign several
    /// repositories, and one must not be served in place of another).
    public var expectedName: String?

    public init(name: String, key: Ed25519.PublicKey, expectedName: String? = nil) {
        self.name = name
        self.key = key
        self.expectedName = expectedName
    }

    /// Checks a served signature against the key and against what the mirror accepted before; the
    /// index it names is checked by `checkIndex` once fetched.
    func check(_ served: IndexSignature, accepted: IndexSignature?, url: String, now: Date = Date()) throws {
        guard served.isSigned(by: key) else {
            let other = served.key == key ? "" : " (it names another key, \(SigningKey.line(served.key)))"
            throw refusal(url, "signature does not verify with the key of '\(name)'\(other)")
        }
        if let expected = accepted?.repository ?? expectedName, served.repository != expected {
            throw refusal(url, "signed for repository '\(served.repository)', but '\(name)' follows '\(expected)'")
        }
        if let accepted {
            if served.serial < accepted.serial {
                throw refusal(url, "serial \(served.serial) is older than the mirror's \(accepted.serial) (a replayed index)")
            }
            if served.serial == accepted.serial, served.index != accepted.index {
                throw refusal(url, "serial \(served.serial) is the mirror's, but signs another index (\(served.index), not \(accepted.index))")
            }
        }
        guard served.expires > now else { throw refusal(url, "signature expired on \(IndexSignature.format(served.expires))") }
    }

    func checkIndex(_ digest: Digest, signedBy served: IndexSignature, url: String) throws {
        guard digest == served.index else {
            throw refusal(url, "index digest does not match its signature (it hashes to \(digest), the signature names \(served.index))")
        }
    }

    func missingSignature(_ url: String) -> LayerError {
        refusal(url, "index.sig missing: repository '\(name)' requires a signed index")
    }

    private func refusal(_ url: String, _ why: String) -> LayerError {
        LayerError("\(url): \(why); the mirror keeps its previous index")
    }
}
