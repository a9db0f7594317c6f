import Foundation
import StrataStore
import StrataTestSupport
import Testing
@testable import StrataLayers

/// The checks a keyed mirror makes on a served `index.sig`, without a server: the ones the CLI tests
/// do not reach (an equal serial over another index, a changed field, the accepted name).
@Suite struct IndexSignatureTests {
    let scratch: TemporaryDirectory
    let key: Ed25519.PrivateKey
    let trust: IndexTrust

    init() throws {
        scratch = try TemporaryDirectory("index-signature")
        key = try Ed25519.PrivateKey.generate()
        trust = IndexTrust(name: "remote", key: try key.publicKey())
    }

    func signed(_ contents: String, serial: UInt64, repository: String = "main", days: Double = 1) throws -> IndexSignature {
        try scratch.write("index-\(serial)", contents)
        return try IndexSignature.sign(indexPath: scratch.path + "/index-\(serial)", repository: repository, serial: serial,
                                       expires: Date(timeIntervalSinceNow: days * 86400), with: key)
    }

    func refusal(_ served: IndexSignature, accepted: IndexSignature?) -> String {
        do {
            try trust.check(served, accepted: accepted, url: "http://host/index.sig")
            return "accepted"
        } catch {
            return "\(error)"
        }
    }

    @Test func aSignatureRoundTripsThroughItsTextAndCoversEveryField() throws {
        let document = try signed("one", serial: 3)
        let parsed = try IndexSignature(parsing: Array(document.text.utf8), file: "index.sig")
        #expect(parsed.isSigned(by: trust.key) && parsed.index == SHA256.hash(Array("one".utf8)) && parsed.serial == 3)
        for (field, changed) in [("Serial: 3", "Serial: 4"), ("Repository: main", "Repository: other")] {
            let text = document.text.replacingOccurrences(of: field, with: changed)
            #expect(!(try IndexSignature(parsing: Array(text.utf8), file: "index.sig")).isSigned(by: trust.key), "\(changed)")
        }
        #expect(throws: ParseError.self) { try IndexSignature(parsing: Array((document.text + "Extra: 1\n").utf8), file: "index.sig") }
    }

    @Test func serialsNamesAndExpiryAreCheckedAgainstTheAcceptedSignature() throws {
        let accepted = try signed("one", serial: 5)
        #expect(refusal(try signed("one", serial: 5), accepted: accepted) == "accepted", "the same index signed again")
        #expect(refusal(try signed("two", serial: 5), accepted: accepted).contains("serial 5 is the mirror's, but signs another index"))
        #expect(refusal(try signed("two", serial: 4), accepted: accepted).contains("serial 4 is older than the mirror's 5 (a replayed index)"))
        #expect(refusal(try signed("two", serial: 6, repository: "testing"), accepted: accepted)
                .contains("signed for repository 'testing', but 'remote' follows 'main'"))
        #expect(refusal(try signed("two", serial: 6, days: -1), accepted: accepted).contains("signature expired on "))
        #expect(refusal(try signed("two", serial: 6), accepted: accepted) == "accepted")
    }
}
