import Foundation
import Testing
@testable import StrataLayers

private func parseError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return (error as? ParseError)?.description ?? "not a ParseError: \(error)"
    }
}

@Suite struct ControlFileTests {
    @Test func parsesStanzasFieldsAndContinuationLines() throws {
        let text = """
            # a comment at column 0 is ignored
            Layer: mysql-server
            version:5.0.51a-3
            Depends: perl (>= 5.6),
                     tcpd (>= 7.6-4)
            Description: the synopsis
             first line of the long description
             .
              indented verbatim line
            # comments may sit between fields
            X-Trailing: value with trailing blanks\t\u{20}

            \t
            Layer: second
            Version: 1
            """
        let stanzas = try ControlFile.parse(text, file: "metadata")
        #expect(stanzas.count == 2)
        let first = stanzas[0]
        #expect(first.line == 2)
        #expect(first.fields.map(\.name) == ["Layer", "version", "Depends", "Description", "X-Trailing"])
        #expect(first.fields.map(\.line) == [2, 3, 4, 6, 11])
        #expect(first["VERSION"] == "5.0.51a-3")
        #expect(first.line(of: "depends") == 4)
        #expect(first["Depends"] == "perl (>= 5.6),\n        tcpd (>= 7.6-4)")
        #expect(first["Description"] == "the synopsis\nfirst line of the long description\n\n indented verbatim line")
        #expect(first["X-Trailing"] == "value with trailing blanks")
        #expect(first["Missing"] == nil && first.line(of: "Missing") == nil)
        #expect(stanzas[1].line == 14)
        #expect(stanzas[1]["Layer"] == "second")
    }

    @Test func emptyTextHasNoStanzas() throws {
        #expect(try ControlFile.parse("", file: "f").isEmpty)
        #expect(try ControlFile.parse("\n\n# only a comment\n", file: "f").isEmpty)
    }

    @Test func renderIsTheInverseOfContinuationParsing() throws {
        let value = "synopsis\nline\n\n two"
        let text = ControlFile.render(name: "Description", value: value)
        #expect(text == "Description: synopsis\n line\n .\n  two\n")
        #expect(try ControlFile.parse(text, file: "f")[0]["Description"] == value)
        #expect(ControlFile.render(name: "Depends", value: "\na,\nb") == "Depends:\n a,\n b\n")
    }

    @Test func reportsErrorsWithFileAndLine() {
        #expect(parseError { _ = try ControlFile.parse("Layer: a\nnot a field\n", file: "m") }
            == "m:2: expected 'Field: value' or an indented continuation line, found 'not a field'")
        #expect(parseError { _ = try ControlFile.parse("# c\n continued\n", file: "m") }
            == "m:2: continuation line before any field")
        #expect(parseError { _ = try ControlFile.parse("Layer: a\n\n continued\n", file: "m") }
            == "m:3: continuation line before any field")
        #expect(parseError { _ = try ControlFile.parse("Layer: a\nVersion: 1\nlayer: b\n", file: "m") }
            == "m:3: duplicate field 'layer' (first on line 1)")
        #expect(parseError { _ = try ControlFile.parse(": value\n", file: "m") }
            == "m:1: expected 'Field: value' or an indented continuation line, found ': value'")
        #expect(parseError { _ = try ControlFile.parse("Bad Name: value\n", file: "m") }
            == "m:1: expected 'Field: value' or an indented continuation line, found 'Bad Name: value'")
    }

    @Test func sameFieldInTwoStanzasIsNotADuplicate() throws {
        #expect(try ControlFile.parse("A: 1\n\nA: 2\n", file: "f").map { $0["A"] } == ["1", "2"])
    }
}

@Suite struct RelationTests {
    private func alternatives(_ text: String) throws -> [[String]] {
        try Relation.parseAlternatives(text, file: "f", line: 1).map { $0.map(\.description) }
    }

    @Test func parsesAlternativesOperatorsAndQualifiers() throws {
        let parsed = try Relation.parseAlternatives(
            "a, b (<< 1), c (<= 2) | d:any (= 3), e:amd64 (>= 1:4~rc1), f (>> 5-1), g (< 6), h (> 7), i (8)",
            file: "f", line: 1)
        #expect(parsed.count == 8)
        #expect(parsed[2].count == 2)
        #expect(parsed[2][1] == Relation(name: "d", architecture: "any",
                                         constraint: VersionConstraint(.equal, try DebianVersion("3"))))
        #expect(parsed[3][0].architecture == "amd64")
        #expect(parsed[3][0].constraint?.version.epoch == 1)
        #expect(parsed.flatMap { $0 }.map { $0.constraint?.op } == [
            nil, .lessThan, .lessOrEqual, .equal, .greaterOrEqual, .greaterThan, .lessOrEqual, .greaterOrEqual,
            .equal,
        ])
        #expect(Relation.render(parsed)
            == "a, b (<< 1), c (<= 2) | d:any (= 3), e:amd64 (>= 1:4~rc1), f (>> 5-1), g (<= 6), h (>= 7), i (= 8)")
    }

    @Test func toleratesWhitespaceNewlinesArchRestrictionsAndProfiles() throws {
        let messy = "  perl(>=5.6) ,\n\ttcpd (  >=  7.6-4 )|tcpd-ng ,\n libfoo [amd64 !i386] <!nocheck> <cross>,"
            + " bar (>= 1) [linux-any],\n"
        #expect(try alternatives(messy) == [
            ["perl (>= 5.6)"], ["tcpd (>= 7.6-4)", "tcpd-ng"], ["libfoo"], ["bar (>= 1)"],
        ])
        #expect(try alternatives("") == [])
        #expect(try alternatives(" \n ") == [])
    }

    @Test func parseListRefusesAlternatives() throws {
        #expect(try Relation.parseList("x (<< 2), y", field: "Conflicts", file: "f", line: 1).map(\.description)
            == ["x (<< 2)", "y"])
        #expect(parseError { _ = try Relation.parseList("x | y", field: "Conflicts", file: "m", line: 4) }
            == "m:4: Conflicts: alternatives ('|') are not allowed in Conflicts")
    }

    @Test func errorsNameTheLineWithinAMultiLineValue() {
        func error(_ text: String) -> String? {
            parseError { _ = try Relation.parseAlternatives(text, file: "m", line: 10) }
        }
        #expect(error("a,\nb (>= 1.0") == "m:11: Depends: unterminated '(' after 'b'")
        #expect(error("a,\n\nb c") == "m:12: Depends: expected ',' or '|' after 'b', found 'c'")
        #expect(error("a, , b") == "m:10: Depends: expected a layer name, found ','")
        #expect(error("a |") == "m:10: Depends: expected a layer name, found end of field")
        #expect(error("a (>< 1)") == "m:10: Depends: bad version relation '><' in the constraint on 'a'")
        #expect(error("a (>= )") == "m:10: Depends: missing version after '>=' for 'a'")
        #expect(error("a (>= 1 2)") == "m:10: Depends: expected ')' after version '1' of 'a', found '2'")
        #expect(error("a (>= 1_0)") == "m:10: Depends: 'a': invalid version '1_0': character '_' not allowed in upstream version")
        #expect(error("a (= 1) (= 2)") == "m:10: Depends: second version constraint on 'a'")
        #expect(error("a [amd64") == "m:10: Depends: unterminated architecture restriction")
        #expect(error("-a") == "m:10: Depends: invalid name '-a': must start with a letter or digit")
        #expect(error("a/b") == "m:10: Depends: invalid name 'a/b': character '/' is not allowed")
        #expect(error("a:") == "m:10: Depends: invalid architecture qualifier in 'a:'")
        #expect(parseError { _ = try Relation.parseAlternatives("a (", file: "--depends", line: nil) }
            == "--depends: Depends: unterminated '(' after 'a'")
    }

    @Test(arguments: [
        // Copied from `apt-cache show bash coreutils perl libc6 apt python3-yaml` on Debian 12.
        "libc6 (>= 2.36), libtinfo6 (>= 6)",
        "base-files (>= 2.1.12), debianutils (>= 5.6-0.1)",
        "libacl1 (>= 2.2.23), libattr1 (>= 1:2.4.44), libc6 (>= 2.34), libgmp10 (>= 2:6.2.1+dfsg1), libselinux1 (>= 3.1~)",
        "perl-base (= 5.36.0-7+deb12u4), perl-modules-5.36 (>= 5.36.0-7+deb12u4), libperl5.36 (= 5.36.0-7+deb12u4)",
        "apt-show-versions (<< 0.22.10), libdist-inkt-perl (<< 0.024-5), perl-modules-5.22, perl-modules-5.26 (<< 5.26.2-5)",
        "libnet-perl (= 1:3.14), libversion-perl (= 1:0.9929), libversion-requirements-perl, podlators-perl (= 4.14)",
        "hurd (<< 1:0.9.git20220301-2), ioquake3 (<< 1.36+u20200211.f2c61c1~dfsg-2~), openssh-server (<< 1:8.1p1-5)",
        "glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus",
        "adduser, gpgv | gpgv2 | gpgv1, libapt-pkg6.0 (>= 2.6.2), debian-archive-keyring, libc6 (>= 2.34), libstdc++6 (>= 11)",
        "python3 (<< 3.12), python3 (>= 3.11~), python3:any, libc6 (>= 2.14), libyaml-0-2 (>= 0.2.2~)",
    ])
    func parsesRealDebianFields(field: String) throws {
        let parsed = try Relation.parseAlternatives(field, file: "f", line: 1)
        // Canonical rendering of already-canonical Debian text is the text itself.
        #expect(Relation.render(parsed) == field)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-cache"), "needs apt-cache"))
    func parsesEveryRelationFieldThatAptShows() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/apt-cache")
        process.arguments = ["show", "libc6", "bash", "coreutils", "perl", "apt", "python3-yaml"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let stanzas = try ControlFile.parse(text, file: "apt-cache show")
        var parsed = 0
        for stanza in stanzas {
            for (name, value, line) in stanza.fields {
                switch name {
                case "Depends", "Pre-Depends", "Recommends", "Suggests", "Enhances":
                    let relations = try Relation.parseAlternatives(value, field: name, file: "apt-cache show", line: line)
                    #expect(relations.count == value.split(separator: ",").count)
                    parsed += 1
                case "Conflicts", "Breaks", "Replaces", "Provides":
                    let relations = try Relation.parseList(value, field: name, file: "apt-cache show", line: line)
                    #expect(relations.count == value.split(separator: ",").count)
                    parsed += 1
                default:
                    break
                }
            }
        }
        // apt-cache prints nothing before `apt-get update`; then there is nothing to check.
        #expect(stanzas.isEmpty || parsed > 10)
    }
}
