import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A served repository whose index is signed, and a client home that trusts the signing key for `remote`.
final class SignedRemote: Sendable {
    let remote: RemoteWorkspace
    var key: String { remote.workspace.scratch.path + "/signing.key" }
    var served: String { remote.workspace.repository }
    var acceptedSignature: String { remote.mirror + "/index.sig" }

    init(_ kind: ServerKind = .strata, label: String) throws {
        remote = try RemoteWorkspace(kind, label: label, add: false)
        expectSuccess(try remote.workspace.strata("repo", "key", "generate", key))
        try sign()
        expectSuccess(try remote.client("repo", "add", "remote", remote.server.url, "--key", key + ".pub"))
    }

    @discardableResult
    func sign(with key: String? = nil, _ options: String...) throws -> Execution {
        expectSuccess(try remote.workspace.strata(["repo", "sign", "main", "--key", key ?? self.key] + options))
    }

    /// `repo update remote`, expected to fail with `message`, leaving the mirror's index and layers as they were.
    func expectRefusal(_ message: String, layers: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let accepted = try String(contentsOfFile: acceptedSignature, encoding: .utf8)
        let update = try remote.client("repo", "update", "remote")
        #expect(update.status != 0, "refused: \(update.stdout)", sourceLocation: sourceLocation)
        #expect(update.stderr.contains(message) && update.stderr.contains(remote.server.url)
                && update.stderr.contains("the mirror keeps its previous index"), "\(update.stderr)", sourceLocation: sourceLocation)
        #expect(try String(contentsOfFile: acceptedSignature, encoding: .utf8) == accepted, sourceLocation: sourceLocation)
        let listed = expectSuccess(try remote.client("layer", "list", "remote"), sourceLocation: sourceLocation).stdout
        #expect(listed.split(separator: "\n").count == layers, "the previous index still serves: \(listed)", sourceLocation: sourceLocation)
    }
}

@Suite(.serialized) struct SignedRepositoryTests {
    @Test func aSignedRepositoryIsMirroredAndUpdatedUnderItsKey() throws {
        let signed = try SignedRemote(label: "signed-ok")
        let remote = signed.remote
        let publicLine = try String(contentsOfFile: signed.key + ".pub", encoding: .utf8)
        #expect(publicLine.hasPrefix("strata-ed25519 ") && publicLine.hasSuffix("\n"))
        #expect(try String(contentsOfFile: signed.key, encoding: .utf8).hasPrefix("strata-ed25519-private "))
        #expect(try FileManager.default.attributesOfItem(atPath: signed.key)[.posixPermissions] as? Int == 0o600)
        #expect(try String(contentsOfFile: remote.clientHome + "/keys/remote.pub", encoding: .utf8) == publicLine)
        let again = try remote.workspace.strata("repo", "key", "generate", signed.key)
        #expect(again.status != 0 && again.stderr.contains("\(signed.key) exists"), "\(again.stderr)")

        let signature = try String(contentsOfFile: signed.served + "/index.sig", encoding: .utf8)
        #expect(signature.contains("Repository: main\n") && signature.contains("Serial: 1\n") && signature.contains("Key: \(publicLine)"))
        #expect(try String(contentsOfFile: signed.acceptedSignature, encoding: .utf8) == signature)
        #expect(expectSuccess(try remote.client("layer", "list", "remote")).stdout
                == expectSuccess(try remote.workspace.strata("layer", "list", "main")).stdout)

        // Objects come as before, verified by digest.
        try AtomicFile.write("remote/app 1\nremote/base 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        expectSuccess(try remote.client("umount", remote.mountpoint))

        // An unchanged signature fetches no index; a new one does.
        #expect(expectSuccess(try remote.client("repo", "update", "remote")).stdout == "remote\tunchanged\t3 layers\n")
        try remote.importLayer("app", "2", depends: "base", files: ["usr/bin/app": "app two\n"])
        #expect(expectSuccess(try remote.client("repo", "update", "remote")).stdout == "remote\tunchanged\t3 layers\n",
                "an index changed but not yet signed is not fetched")
        #expect(try signed.sign().stdout.contains("main\tserial 2\t"))
        #expect(expectSuccess(try remote.client("repo", "update", "remote")).stdout == "remote\tupdated\t4 layers\n")
        #expect(try String(contentsOfFile: signed.acceptedSignature, encoding: .utf8).contains("Serial: 2\n"))
    }

    @Test(arguments: ServerKind.allCases) func tamperedReplayedExpiredForeignAndUnsignedIndexesAreRefused(_ kind: ServerKind) throws {
        let signed = try SignedRemote(kind, label: "signed-refused-\(kind)")
        let remote = signed.remote
        let index = signed.served + "/index.sqlite", signature = signed.served + "/index.sig"
        let first = (index: try FileDescriptor.open(index, O_RDONLY).readAll(), signature: try FileDescriptor.open(signature, O_RDONLY).readAll())
        try remote.importLayer("app", "2", depends: "base", files: ["usr/bin/app": "app two\n"])
        try signed.sign()
        let second = (index: try FileDescriptor.open(index, O_RDONLY).readAll(), signature: try FileDescriptor.open(signature, O_RDONLY).readAll())

        // One byte of the index changed on the way.
        var tampered = second.index
        tampered[tampered.count / 2] ^= 1
        try AtomicFile.write(tampered, to: index)
        try signed.expectRefusal("index digest does not match its signature", layers: 3)
        try AtomicFile.write(second.index, to: index)
        expectSuccess(try remote.client("repo", "update", "remote"))

        // The first signed index, served again after the second was accepted.
        try AtomicFile.write(first.index, to: index)
        try AtomicFile.write(first.signature, to: signature)
        try signed.expectRefusal("serial 1 is older than the mirror's 2 (a replayed index)", layers: 4)
        try AtomicFile.write(second.index, to: index)
        try AtomicFile.write(second.signature, to: signature)

        try signed.sign("--expires", "0")
        try signed.expectRefusal("signature expired on ", layers: 4)

        let other = remote.workspace.scratch.path + "/other.key"
        expectSuccess(try remote.workspace.strata("repo", "key", "generate", other))
        try signed.sign(with: other)
        try signed.expectRefusal("signature does not verify with the key of 'remote' (it names another key", layers: 4)

        // Moved aside, not removed: the signer's next serial follows the last index.sig.
        #expect(rename(signature, signature + ".aside") == 0)
        try signed.expectRefusal("index.sig missing: repository 'remote' requires a signed index", layers: 4)
        #expect(rename(signature + ".aside", signature) == 0)

        // Signed again by the trusted key, with a newer serial: accepted.
        #expect(try signed.sign().stdout.contains("main\tserial 5\t"))
        #expect(expectSuccess(try remote.client("repo", "update", "remote")).stdout == "remote\tupdated\t4 layers\n")
    }

    @Test func aKeyedNameRefusesAnUnsignedRepositoryOrAnotherRepositorysName() throws {
        let signed = try SignedRemote(label: "signed-names")
        let remote = signed.remote
        let renamed = try remote.client("repo", "add", "other", remote.server.url, "--key", signed.key + ".pub", "--expect-name", "stable")
        #expect(renamed.status != 0 && renamed.stderr.contains("signed for repository 'main', but 'other' follows 'stable'"), "\(renamed.stderr)")
        expectSuccess(try remote.client("repo", "add", "other", remote.server.url, "--key", signed.key + ".pub", "--expect-name", "main"))

        let unsigned = try RemoteWorkspace(.strata, label: "signed-unsigned", add: false)
        let key = try String(contentsOfFile: signed.key + ".pub", encoding: .utf8).trimmingCharacters(in: .newlines)
        let refused = try remote.client("repo", "add", "plain", unsigned.server.url, "--key", key)
        #expect(refused.status != 0 && refused.stderr.contains("index.sig missing: repository 'plain' requires a signed index"), "\(refused.stderr)")
        #expect(try !expectSuccess(remote.client("repo", "list")).stdout.contains("plain"))
        #expect(!FileManager.default.fileExists(atPath: remote.clientHome + "/keys/plain.pub"))

        // A key put in the keyring by hand binds the name it is filed under, with no --key.
        try AtomicFile.write(key + "\n", to: remote.clientHome + "/keys/filed.pub")
        let filed = try remote.client("repo", "add", "filed", unsigned.server.url)
        #expect(filed.status != 0 && filed.stderr.contains("index.sig missing: repository 'filed' requires a signed index"), "\(filed.stderr)")
        expectSuccess(try remote.client("repo", "add", "filed", remote.server.url))
        #expect(FileManager.default.fileExists(atPath: remote.clientHome + "/mirrors/filed/index.sig"))
    }

    @Test func keyFileErrorsNameTheFile() throws {
        let signed = try SignedRemote(label: "signed-keys")
        let workspace = signed.remote.workspace
        let missing = workspace.scratch.path + "/missing.key"
        let garbage = workspace.scratch.path + "/garbage.key"
        let short = workspace.scratch.path + "/short.key"
        try AtomicFile.write("not a key at all\n", to: garbage)
        try AtomicFile.write("strata-ed25519-private AAAA\n", to: short)
        let cases: [(arguments: [String], message: String)] = [
            (["repo", "sign", "main", "--key", missing], "\(missing): cannot read the key file (No such file or directory)"),
            (["repo", "sign", "main", "--key", garbage], "\(garbage): expected one line 'strata-ed25519-private BASE64', found 5 words"),
            (["repo", "sign", "main", "--key", short], "\(short): the key is not 32 bytes of base64"),
            (["repo", "sign", "main", "--key", signed.key + ".pub"], "\(signed.key).pub: expected a 'strata-ed25519-private' key, found a 'strata-ed25519' key"),
            (["repo", "add", "again", signed.remote.server.url, "--key", signed.key], "\(signed.key): expected a 'strata-ed25519' key, found a 'strata-ed25519-private' key"),
        ]
        for (arguments, message) in cases {
            let run = try workspace.strata(arguments)
            #expect(run.status != 0 && run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
        #expect(try String(contentsOfFile: signed.served + "/index.sig", encoding: .utf8).contains("Serial: 1\n"), "no failed signing wrote a signature")
    }
}
