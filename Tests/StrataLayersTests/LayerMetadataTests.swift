import Foundation
import Testing
@testable import StrataLayers

/// The repository checkout this test file belongs to (through the symlinks of a scratch package, if any).
let repositoryRoot = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func parseError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return (error as? ParseError)?.description ?? "not a ParseError: \(error)"
    }
}

@Suite struct LayerMetadataTests {
    @Test func parsesTheStrataForm() throws {
        let metadata = try LayerMetadata(parsing: """
            Layer: mysql-server
            Version: 5.0.51a-3
            Depends: perl (>= 5.6), tcpd (>= 7.6-4) | tcpd-ng
            Pre-Depends: debconf
            Conflicts: mysql-server-4.1
            Replaces: mysql-server-4.1
            Provides: mysql-server-any
            Breaks: old-client (<< 5)
            Maintainer: Someone <someone@example.org>
            Description: MySQL database server
             The long description.
             .
             Second paragraph.

            """, file: "mysql-server_5.0.51a-3/metadata")
        #expect(metadata.name == "mysql-server")
        #expect(metadata.version == (try DebianVersion("5.0.51a-3")))
        #expect(metadata.architecture == "all")
        #expect(metadata.depends.map { $0.map(\.name) } == [["perl"], ["tcpd", "tcpd-ng"]])
        #expect(metadata.preDepends.map { $0.map(\.name) } == [["debconf"]])
        #expect(metadata.conflicts.map(\.name) == ["mysql-server-4.1"])
        #expect(metadata.replaces.map(\.name) == ["mysql-server-4.1"])
        #expect(metadata.provides.map(\.name) == ["mysql-server-any"])
        #expect(metadata.breaks.map(\.description) == ["old-client (<< 5)"])
        #expect(metadata.extraFields == [MetadataField("Maintainer", "Someone <someone@example.org>")])
        #expect(metadata.description == "MySQL database server\nThe long description.\n\nSecond paragraph.")
        #expect(!metadata.essential)
        #expect(metadata.multiArch == nil)
    }

    @Test func parsesADebianControlFileAndPrefersLayerOverPackage() throws {
        let debian = try LayerMetadata(parsing: """
            Package: bash
            Essential: yes
            Version: 5.2.15-2+b13
            Architecture: amd64
            Multi-Arch: Foreign
            Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
            """, file: "control")
        #expect(debian.name == "bash")
        #expect(debian.essential)
        #expect(debian.architecture == "amd64")
        #expect(debian.multiArch == "foreign")
        #expect(debian.extraFields.isEmpty)

        let both = try LayerMetadata(parsing: "Package: bash\nLayer: bash-layer\nVersion: 1\n", file: "metadata")
        #expect(both.name == "bash-layer")
        #expect(both.extraFields == [MetadataField("Package", "bash")])
    }

    @Test func rendersCanonicalTextThatRoundTrips() throws {
        let text = """
            Description: a layer
             with a long description
             .
            X-Custom: kept
            Provides: httpd
            Conflicts: other (<< 2)
            Depends: a (>=1),b|c:any
            Layer: example
            Essential: no
            Version: 1:2.0-1
            Pre-Depends: d
            Multi-Arch: same
            Replaces: other (<< 2)
            Breaks: e
            Recommends: f
            Architecture: amd64
            """
        let metadata = try LayerMetadata(parsing: text, file: "metadata")
        #expect(metadata.controlText == """
            Layer: example
            Version: 1:2.0-1
            Architecture: amd64
            Depends: a (>= 1), b | c:any
            Pre-Depends: d
            Conflicts: other (<< 2)
            Breaks: e
            Replaces: other (<< 2)
            Provides: httpd
            Multi-Arch: same
            X-Custom: kept
            Recommends: f
            Description: a layer
             with a long description
             .

            """)
        #expect(try LayerMetadata(parsing: metadata.controlText, file: "rendered") == metadata)
    }

    @Test func buildsMetadataInCode() throws {
        let libgreet = try Relation.parseAlternatives("libgreet (>= 1.0)", file: "--depends", line: nil)
        let metadata = try LayerMetadata(name: "greet", version: DebianVersion("2.0-1"), depends: libgreet,
                                         essential: true, extraFields: [MetadataField("Homepage", "https://x")])
        #expect(metadata.architecture == "all")
        #expect(metadata.controlText == """
            Layer: greet
            Version: 2.0-1
            Architecture: all
            Depends: libgreet (>= 1.0)
            Essential: yes
            Homepage: https://x

            """)
        #expect(try LayerMetadata(parsing: metadata.controlText, file: "rendered") == metadata)

        let version = try DebianVersion("1")
        #expect(parseError { _ = try LayerMetadata(name: "Greet", version: version) }
            == "invalid layer name 'Greet': must start with a lowercase letter or digit")
        #expect(parseError { _ = try LayerMetadata(name: "ok", version: version, architecture: "AMD64") }
            == "invalid architecture 'AMD64': expected a name such as 'all' or 'amd64'")
        #expect(parseError { _ = try LayerMetadata(name: "ok", version: version, multiArch: "maybe") }
            == "Multi-Arch must be 'same', 'foreign', 'allowed' or 'no', found 'maybe'")
        #expect(parseError { _ = try LayerMetadata(name: "ok", version: version, extraFields: [MetadataField("depends", "x")]) }
            == "field 'depends' has its own property and cannot be an extra field")
        #expect(parseError { _ = try LayerMetadata(name: "ok", version: version, extraFields: [MetadataField("A B", "x")]) }
            == "invalid field name 'A B'")
        #expect(parseError {
            _ = try LayerMetadata(name: "ok", version: version, extraFields: [MetadataField("X", "1"), MetadataField("x", "2")])
        } == "duplicate field 'x'")
    }

    @Test(arguments: [
        ("", "m: no fields: expected 'Layer: NAME' and 'Version: VERSION'"),
        ("Version: 1\n", "m:1: missing 'Layer' field (or 'Package', in a Debian control file)"),
        ("# c\nLayer: ab\n", "m:2: missing 'Version' field"),
        ("Layer: ab\nVersion: 1\n\nLayer: cd\n", "m:4: expected a single stanza, found a second one (blank lines end a stanza)"),
        ("Layer: a\n", "m:1: invalid layer name 'a': must be at least two characters long"),
        ("Layer: -ab\n", "m:1: invalid layer name '-ab': must start with a lowercase letter or digit"),
        ("Layer: a_b\n", "m:1: invalid layer name 'a_b': character '_' is not allowed (only lowercase letters, digits, '+', '-' and '.')"),
        ("Layer: ab\nVersion: 1.0-\n", "m:2: invalid version '1.0-': revision is empty"),
        ("Layer: ab\nVersion: 1\nDepends: x,\n y (>= 1\n", "m:4: Depends: unterminated '(' after 'y'"),
        ("Layer: ab\nVersion: 1\nProvides: x | y\n", "m:3: Provides: alternatives ('|') are not allowed in Provides"),
        ("Layer: ab\nVersion: 1\nEssential: maybe\n", "m:3: Essential must be 'yes' or 'no', found 'maybe'"),
        ("Layer: ab\nVersion: 1\nArchitecture: x86_64\n", "m:3: invalid architecture 'x86_64': expected a name such as 'all' or 'amd64'"),
    ])
    func reportsErrorsWithLineNumbers(text: String, expected: String) {
        #expect(parseError { _ = try LayerMetadata(parsing: text, file: "m") } == expected)
    }

    /// Every package installed on this machine, as dpkg records it, is valid metadata that round-trips.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/var/lib/dpkg/status"), "needs a dpkg status file"))
    func parsesAndRoundTripsEveryInstalledPackage() throws {
        let status = try String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8)
        let stanzas = status.components(separatedBy: "\n\n").filter { !$0.allSatisfy(\.isWhitespace) }
        #expect(stanzas.count > 50)
        var essential = 0
        for stanza in stanzas {
            let metadata = try LayerMetadata(parsing: stanza, file: "/var/lib/dpkg/status")
            #expect(try LayerMetadata(parsing: metadata.controlText, file: "rendered") == metadata)
            if metadata.essential { essential += 1 }
        }
        #expect(essential > 0)
    }
}

/// The sample layer units in Layers/, with their metadata.
func loadSampleLayers() throws -> [(directory: URL, metadata: LayerMetadata)] {
    let layersDirectory = repositoryRoot.appendingPathComponent("Layers")
    let names = try FileManager.default.contentsOfDirectory(atPath: layersDirectory.path).sorted()
    return try names.map { name in
        let directory = layersDirectory.appendingPathComponent(name)
        let text = try String(contentsOf: directory.appendingPathComponent("metadata"), encoding: .utf8)
        return (directory, try LayerMetadata(parsing: text, file: "Layers/\(name)/metadata"))
    }
}

@Suite struct SampleLayerTests {

    /// Regular files and symlinks under `filesystem/`, by path, with their contents.
    private static func files(of directory: URL) throws -> [String: Data] {
        let root = directory.appendingPathComponent("filesystem")
        var result: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root.path)!
        while let path = enumerator.nextObject() as? String {
            let url = root.appendingPathComponent(path)
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            if attributes[.type] as? FileAttributeType == .typeRegular {
                result["/" + path] = try Data(contentsOf: url)
            }
        }
        return result
    }

    @Test func everySampleLayerIsNamedAfterItsMetadataAndHasFiles() throws {
        let layers = try loadSampleLayers()
        #expect(layers.count >= 6)
        for (directory, metadata) in layers {
            #expect(directory.lastPathComponent == "\(metadata.name)_\(metadata.version)")
            #expect(try !Self.files(of: directory).isEmpty, "\(directory.lastPathComponent) has no files")
            #expect(try LayerMetadata(parsing: metadata.controlText, file: "rendered") == metadata)
        }
    }

    @Test func sampleScriptsAreExecutableShellScripts() throws {
        var scripts = 0
        for (directory, _) in try loadSampleLayers() {
            let folder = directory.appendingPathComponent("scripts")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] {
                #expect(["pre-install", "post-install", "pre-remove", "post-remove"].contains(name))
                let path = folder.appendingPathComponent(name).path
                #expect(FileManager.default.isExecutableFile(atPath: path), "\(path) is not executable")
                #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix("#!/bin/sh\n"))
                scripts += 1
            }
        }
        #expect(scripts >= 2)
    }

    /// DESIGN §4: software layers may share a path only with identical contents or a declared Replaces;
    /// units of one layer always conflict, so they are never composed and may overlap freely.
    @Test func sampleLayersOverlapOnlyWhereAllowed() throws {
        let layers = try loadSampleLayers()
        let contents = try layers.map { try Self.files(of: $0.directory) }
        var replacesOverlaps = 0
        for i in layers.indices {
            for j in layers.indices where i < j && layers[i].metadata.name != layers[j].metadata.name {
                let a = layers[i].metadata, b = layers[j].metadata
                func replaces(_ x: LayerMetadata, _ y: LayerMetadata) -> Bool {
                    x.replaces.contains { $0.name == y.name && ($0.constraint?.isSatisfied(by: y.version) ?? true) }
                }
                for path in Set(contents[i].keys).intersection(contents[j].keys)
                where contents[i][path] != contents[j][path] {
                    #expect(replaces(a, b) || replaces(b, a),
                            "\(a.name) \(a.version) and \(b.name) \(b.version) both ship \(path)")
                    replacesOverlaps += 1
                }
            }
        }
        #expect(replacesOverlaps >= 1, "the samples should show one overlap allowed by Replaces")
    }
}
