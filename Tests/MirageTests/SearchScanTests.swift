import Foundation
import Mirage
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing

@Suite struct SearchTests {
    @Test func searchByGlobDigestAndLayer() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let shared = ["usr/lib/x86_64-linux-gnu/libssl.so.3": "ssl 3.0.11", "etc/motd": "hi"]
        try fixture.checkin("alpha", shared)
        try fixture.checkin("beta", shared.merging(["usr/bin/openssl": "openssl"]) { $1 })
        try fixture.checkin("gamma", ["usr/lib/x86_64-linux-gnu/libssl.so.3": "ssl 3.0.9", "srv/app/libssl.so.3": "vendored"])

        let byName = try catalog.search(SearchQuery(path: "libssl.so*"))
        #expect(byName.map { "\($0.image) \($0.path!)" } == ["alpha@1 /usr/lib/x86_64-linux-gnu/libssl.so.3", "beta@1 /usr/lib/x86_64-linux-gnu/libssl.so.3",
                                                            "gamma@1 /srv/app/libssl.so.3", "gamma@1 /usr/lib/x86_64-linux-gnu/libssl.so.3"])
        let byPath = try catalog.search(SearchQuery(path: "/usr/lib/*/libssl.so.3"))
        #expect(byPath.map(\.image) == ["alpha@1", "beta@1", "gamma@1"], "'*' stays within one component")
        #expect(try catalog.search(SearchQuery(path: "/usr/bin/openssl")).map(\.image) == ["beta@1"])

        let old = SHA256.hash(Array("ssl 3.0.9".utf8))
        let byDigest = try catalog.search(SearchQuery(content: old))
        #expect(byDigest.map { "\($0.image) \($0.path!)" } == ["gamma@1 /usr/lib/x86_64-linux-gnu/libssl.so.3"])

        try catalog.delete(.defaultVersion("gamma"), by: root)
        #expect(try catalog.search(SearchQuery(content: old)).isEmpty, "deleted images are not searched")
        #expect(try catalog.search(SearchQuery(content: old, includeDeleted: true)).count == 1)
    }

    @Test func pathGlobs() {
        #expect(PathGlob("/usr/lib/*/libssl.so*").matches("/usr/lib/x86_64-linux-gnu/libssl.so.3"))
        #expect(!PathGlob("/usr/lib/*/libssl.so*").matches("/usr/lib/a/b/libssl.so.3"), "'*' stays within a component")
        #expect(PathGlob("/usr/**/libssl.so*").matches("/usr/lib/a/b/libssl.so.3"))
        #expect(PathGlob("bin/openssl").matches("/usr/bin/openssl") && PathGlob("bin/openssl").matches("/bin/openssl"))
        #expect(!PathGlob("/bin/openssl").matches("/usr/bin/openssl"), "a leading '/' anchors")
        #expect(!PathGlob("*.conf").matches("/etc/.hidden.conf"), "wildcards skip dot files, as the shell does")
    }

    @Test func searchByLayerVersion() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let store = catalog.store
        let base = try fixture.checkin("base", ["etc/motd": "hi"])
        let filesystem = try catalog.manifest(of: base).filesystem
        let layerManifest = try store.put(LayerManifest(metadata: "Layer: openssl\n", filesystem: filesystem, scripts: nil).encoded())
        for (name, version) in [("old-appliance", "3.0.9-1"), ("new-appliance", "3.0.11-1")] {
            let manifest = ImageManifest(filesystem: filesystem, layers: [.init(repository: "debian", name: "openssl", version: version, layer: layerManifest, whiteouts: nil)])
            try catalog.checkin(manifest: manifest, name: name, by: root)
        }
        let older = try Relation.parseList("openssl (<< 3.0.11)", file: "test", line: nil)[0]
        let hits = try catalog.search(SearchQuery(layer: older))
        #expect(hits.map(\.image) == ["old-appliance@1"])
        #expect(hits.first?.layer == "debian/openssl 3.0.9-1")
        let any = try Relation.parseList("openssl", file: "test", line: nil)[0]
        #expect(try catalog.search(SearchQuery(layer: any)).map(\.image) == ["new-appliance@1", "old-appliance@1"])
        #expect(try catalog.search(SearchQuery(path: "motd", layer: older)).map(\.image) == ["old-appliance@1"], "criteria combine")
    }
}

@Suite struct ScanTests {
    @Test func findingsCarrySeverities() throws {
        let fixture = try CatalogFixture()
        let catalog = fixture.catalog
        let files = ["usr/bin/sudo": "sudo", "usr/bin/wall": "wall", "usr/bin/mine": "mine", "etc/motd": "hi", "etc/shadow": "root:*",
                     "srv/open": "open", "tmp/": "", "var/tmp/dropper": "evil", "opt/": ""]
        let base = try fixture.checkin("base", files, modes: ["usr/bin/sudo": 0o4755, "usr/bin/wall": 0o2755, "usr/bin/mine": 0o755, "srv/open": 0o666,
                                                              "tmp/": 0o1777, "var/tmp/dropper": 0o755, "opt/": 0o777])
        var changed = files
        changed["etc/motd"] = "changed"
        changed["etc/shadow"] = "root:$6$new"
        changed["usr/bin/extra"] = "added"
        let current = try fixture.checkin("current", changed, modes: ["usr/bin/sudo": 0o4755, "usr/bin/wall": 0o2755, "usr/bin/mine": 0o755,
                                                                      "srv/open": 0o666, "tmp/": 0o1777, "var/tmp/dropper": 0o755, "opt/": 0o777,
                                                                      "usr/bin/extra": 0o755])
        let deny = DenyList([SHA256.hash(Array("evil".utf8)): "known dropper"])
        let tree = ScanTree(root: try catalog.manifest(of: current).filesystem, store: catalog.store)
        let findings = try Scanner.scan(tree, base: ScanTree(root: try catalog.manifest(of: base).filesystem, store: catalog.store), deny: deny)
        let summary = Set(findings.map { "\($0.severity.rawValue) \($0.rule) \($0.path)" })
        #expect(summary == [
            "critical denied-content /var/tmp/dropper",
            "high setuid /usr/bin/sudo",
            "high world-writable /srv/open",
            "high world-writable /opt",
            "high executable-in-temporary-directory /var/tmp/dropper",
            "high changed-configuration /etc/shadow",
            "medium setgid /usr/bin/wall",
            "medium changed-system-executable /usr/bin/extra",
            "low changed-configuration /etc/motd",
            "low world-writable /tmp",
        ])
        #expect(findings.first?.severity == .critical && findings.last?.severity == .low, "most severe first")

        let plain = try Scanner.scan(tree)
        #expect(!plain.contains { $0.rule.hasPrefix("changed-") || $0.rule == "denied-content" }, "change rules need a base, deny rules a list")
    }

    @Test func denyListFileIsParsedWithLineNumbers() throws {
        let scratch = try TemporaryDirectory()
        let digest = SHA256.hash(Array("x".utf8))
        try scratch.write("deny", "# banned\n\(digest) leaked key\n")
        #expect(try DenyList(file: scratch.path + "/deny").reason(for: digest) == "leaked key")
        try scratch.write("bad", "\(digest)\nnot-a-digest\n")
        #expect(throws: CatalogError.self) { try DenyList(file: scratch.path + "/bad") }
        do {
            _ = try DenyList(file: scratch.path + "/bad")
        } catch {
            #expect("\(error)".contains("bad:2"))
        }
    }
}
