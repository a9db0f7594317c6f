import Foundation
import StrataHTTP
import StrataStore
import StrataTestSupport
import Testing

/// A repository served by nginx over https and HTTP/2, with a certificate of a CA made for the test.
@Suite(.serialized) struct HTTPSRepositoryTests {
    @Test func theClientTrustsItsOwnCAFileAndPinnedPublicKey() throws {
        let remote = try RemoteWorkspace(.nginx, label: "remote-pin", tls: true)
        let location = try HTTPLocation(remote.server.url)
        let authority = try #require(remote.trusted)
        let certificate = authority.replacingOccurrences(of: "-ca.pem", with: ".pem")
        let pin = "sha256//" + (try shell("openssl x509 -pubkey -noout -in \(certificate) | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"))
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let trusted = HTTPClient(location: location, trust: .init(caFile: authority, pinnedPublicKey: pin))
        let (response, _) = try trusted.get("strata-repository", limit: 4096)
        #expect(response.status == 200)

        let wrongPin = HTTPClient(location: location, trust: .init(caFile: authority, pinnedPublicKey: "sha256//" + String(repeating: "A", count: 43) + "="))
        let refused = try #require(throws: NetworkError.self) { try wrongPin.get("strata-repository", limit: 4096) }
        #expect(refused.description.hasPrefix("\(remote.server.url)/strata-repository: the server's public key is not the one pinned"), "\(refused)")

        let systemStore = HTTPClient(location: location, trust: .init())
        let untrusted = try #require(throws: NetworkError.self) { try systemStore.get("strata-repository", limit: 4096) }
        #expect(untrusted.description.contains("the server's certificate is not trusted"), "\(untrusted)")
    }

    @Test func aRepositoryServedOverHTTPSIsMirroredMountedAndFollowedThroughARedirect() throws {
        let remote = try RemoteWorkspace(.nginx, label: "remote-tls", tls: true)
        let url = remote.server.url
        #expect(url.hasPrefix("https://127.0.0.1:"))
        let served = expectSuccess(try remote.workspace.strata("layer", "list", "main")).stdout
        #expect(expectSuccess(try remote.client("layer", "list", "remote")).stdout == served)

        try AtomicFile.write("remote/app\n", to: remote.ldf)
        expectSuccess(try remote.client("ldf", "resolve", remote.ldf, "--write"))
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance"))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        #expect(try remote.read("etc/os-release") == "strata\n")
        expectSuccess(try remote.client("umount", remote.mountpoint))
        let requests = remote.server.requests()
        #expect(requests.contains { $0.contains("GET /objects/sha256/") && $0.contains(" HTTP/2.0\" 200 ") }, "objects came over HTTP/2: \(requests)")

        // The same repository under another path, reached through a permanent redirect.
        expectSuccess(try remote.client("repo", "add", "moved", url + "/moved/"))
        #expect(expectSuccess(try remote.client("layer", "list", "moved")).stdout == served)
        #expect(remote.server.requests().contains { $0.contains("GET /moved/index.sqlite") && $0.contains("\" 301 ") })

        // A client that does not trust the test's CA refuses the server, naming the URL and why.
        let untrusted = try execute(strataExecutable, ["repo", "add", "other", url],
                                    environment: ["STRATA_HOME": remote.workspace.scratch.path + "/untrusted-home", "CURL_CA_BUNDLE": "", "SSL_CERT_FILE": ""])
        #expect(untrusted.status != 0 && untrusted.stderr.contains("\(url)/strata-repository: the server's certificate is not trusted (SSL certificate problem"),
                "\(untrusted.stderr)")
    }

    /// `repo add --ca` and `--pin` keep the repository's own trust in its mirror: later fetches (the
    /// layers at mount) check the same, with nothing in the environment.
    @Test func aRepositoryAddedWithItsOwnCAAndPinIsTrustedForEveryFetch() throws {
        let remote = try RemoteWorkspace(.nginx, label: "remote-ca", tls: true)
        let url = remote.server.url, authority = try #require(remote.trusted)
        let certificate = authority.replacingOccurrences(of: "-ca.pem", with: ".pem")
        let pin = "sha256//" + (try shell("openssl x509 -pubkey -noout -in \(certificate) | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"))
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let home = remote.workspace.scratch.path + "/own-trust-home"
        func strata(_ arguments: String...) throws -> Execution {
            try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home, "CURL_CA_BUNDLE": "", "SSL_CERT_FILE": ""])
        }
        let copy = remote.workspace.scratch.path + "/ca-given.pem"
        try shell("cp '\(authority)' '\(copy)'")
        expectSuccess(try strata("repo", "add", "remote", url, "--ca", copy, "--pin", pin))
        try FileManager.default.removeItem(atPath: copy)  // the mirror keeps its own copy
        try AtomicFile.write("remote/app\n", to: remote.ldf)
        expectSuccess(try strata("ldf", "resolve", remote.ldf, "--write"))
        let mountpoint = remote.workspace.scratch.path + "/own-trust-mnt"
        try makeDirectories(mountpoint)
        expectSuccess(try strata("mount", remote.ldf, mountpoint, "--name", "own-trust"))
        #expect(try String(contentsOfFile: mountpoint + "/usr/bin/app", encoding: .utf8) == "app one\n")
        expectSuccess(try strata("umount", mountpoint))

        let wrongPin = try strata("repo", "add", "pinned", url, "--ca", authority, "--pin", "sha256//" + String(repeating: "A", count: 43) + "=")
        #expect(wrongPin.status != 0 && wrongPin.stderr.contains("the server's public key is not the one pinned"), "\(wrongPin.stderr)")
        let notPEM = try strata("repo", "add", "bad", url, "--ca", remote.ldf)
        #expect(notPEM.status != 0 && notPEM.stderr.contains("--ca \(remote.ldf): not a readable PEM file"), "\(notPEM.stderr)")
    }
}
