import Foundation
import Testing
@testable import StrataLayers

private func parseError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}

private func entry(_ text: String) throws -> LDFEntry {
    let held = text.hasPrefix("=")
    let parts = text.dropFirst(held ? 1 : 0).split(separator: " ")
    let names = parts[0].split(separator: "/")
    return LDFEntry(repository: String(names[0]), layer: String(names[1]),
                    version: try parts.count > 1 ? DebianVersion(String(parts[1])) : nil, held: held)
}

/// Applies an edit, checks the result still parses, and returns the rendered text.
private func edited(_ text: String, _ edit: (inout LDF) throws -> Void) throws -> String {
    var ldf = try LDF.parse(text, file: "t.ldf")
    try edit(&ldf)
    let rendered = ldf.render()
    _ = try LDF.parse(rendered, file: "rendered.ldf")
    return rendered
}

private let designExample = """
    # comments and blank lines aside, the first block lists the explicitly chosen layers
    main/mysql-server 5.0.51a-3
    =main/mailx 3a8.1.2-4          # '=' holds this layer at this version
    @main/sql-server               # '@' includes another VLFS's LDF (a template), recursively

    main/perl 5.36.0-7             # after the first blank line: layers added by the resolver
    main/tcpd 7.6-8

    """

@Suite struct LDFParsingTests {
    @Test(arguments: [
        designExample,
        "",
        "\n",
        "main/aa",
        "main/aa\n\n\n",
        "# only a comment",
        "\n\n# header after blank lines\n\n  main/aa 1.0\t# indented, tab before comment\n\n\tmain/bb 2\n",
        "main/aa 1\r\n\r\nmain/bb 2\r\n",
        "main/aa#no space before the comment\n=main/bb 1:2.0~rc1-1   \n",
    ])
    func rendersAnUnmodifiedParseByteForByte(text: String) throws {
        #expect(try LDF.parse(text, file: "t.ldf").render() == text)
    }

    @Test func readsBlocksHoldsAndIncludes() throws {
        let ldf = try LDF.parse(designExample, file: "t.ldf")
        #expect(ldf.explicitEntries == [
            try entry("main/mysql-server 5.0.51a-3"), try entry("=main/mailx 3a8.1.2-4"),
        ])
        #expect(ldf.includes == ["main/sql-server"])
        #expect(ldf.explicitItems == [
            .layer(try entry("main/mysql-server 5.0.51a-3")), .layer(try entry("=main/mailx 3a8.1.2-4")),
            .include("main/sql-server"),
        ])
        #expect(ldf.implicitEntries == [try entry("main/perl 5.36.0-7"), try entry("main/tcpd 7.6-8")])
        #expect(ldf.lineNumber(ofLayer: "tcpd") == 7)
        #expect(ldf.lineNumber(ofLayer: "mailx") == 3)
        #expect(ldf.lineNumber(ofLayer: "nothing") == nil)
        #expect(try entry("=main/mailx 3a8.1.2-4").description == "=main/mailx 3a8.1.2-4")
    }

    @Test func blankLinesBeforeTheFirstEntryDoNotEndTheExplicitBlock() throws {
        let ldf = try LDF.parse("# header\n\n# more\n\nmain/aa\n# note\nmain/bb\n\nmain/cc\n", file: "t.ldf")
        #expect(ldf.explicitEntries.map(\.layer) == ["aa", "bb"])
        #expect(ldf.implicitEntries.map(\.layer) == ["cc"])
    }

    @Test func anIncludeAloneStartsTheExplicitBlock() throws {
        let ldf = try LDF.parse("@main/sql-server\n\nmain/perl 5\n", file: "t.ldf")
        #expect(ldf.explicitEntries.isEmpty)
        #expect(ldf.includes == ["main/sql-server"])
        #expect(ldf.implicitEntries.map(\.layer) == ["perl"])
    }

    @Test func theSameLayerMayAppearOnceInEachBlock() throws {
        let ldf = try LDF.parse("main/aa 1\n\nmain/aa 1\n", file: "t.ldf")
        #expect(ldf.explicitEntries.count == 1 && ldf.implicitEntries.count == 1)
    }

    @Test(arguments: [
        ("main/aa\nmain b\n", "t.ldf:2: expected 'repository/layer [version]', found 'main b'"),
        ("main/aa 1 2 # three words", "t.ldf:1: expected 'repository/layer [version]', found 'main/aa 1 2'"),
        ("main/aa/b", "t.ldf:1: expected 'repository/layer [version]', found 'main/aa/b'"),
        ("\n/a", "t.ldf:2: expected 'repository/layer [version]', found '/a'"),
        ("=main/", "t.ldf:1: expected '=repository/layer version', found '=main/'"),
        ("main/aa\n=main/mailx   # held\n", "t.ldf:2: held layer '=main/mailx' needs a version ('=' holds a layer at the version given)"),
        ("main/aa 1.0-", "t.ldf:1: 'main/aa': invalid version '1.0-': revision is empty"),
        ("# c\nmain/aa 1\nother/aa 2\n", "t.ldf:3: duplicate layer 'aa' in the explicit block (first on line 2)"),
        ("main/aa\n\nmain/bb\n# c\nmain/bb 2\n", "t.ldf:5: duplicate layer 'bb' in the implicit block (first on line 3)"),
        ("main/aa\n\n@web\n", "t.ldf:3: include '@web' in the implicit block: includes belong in the first block"),
        ("@web\n@web\n", "t.ldf:2: duplicate include '@web' (first on line 1)"),
        ("@\n", "t.ldf:1: expected '@template', found '@'"),
        ("@web extra\n", "t.ldf:1: expected '@template', found '@web extra'"),
        ("main/Perl\n", "t.ldf:1: invalid layer name 'Perl': must start with a lowercase letter or digit"),
        ("ma!n/perl\n", "t.ldf:1: invalid repository name 'ma!n': character '!' is not allowed"),
    ])
    func refusesBadLinesNamingFileAndLine(text: String, expected: String) {
        #expect(parseError { _ = try LDF.parse(text, file: "t.ldf") } == expected)
    }
}

@Suite struct LDFEditingTests {
    private let text = """
        # web appliance
        main/tinyhttpd 1.4-2          # provides httpd
        @web-template
        # trailing note of the explicit block

        # resolver output
        main/base-files 1.2-1
        # config comes with the server
        main/tinyhttpd-config 1.0-1   # pre-depends
        # end of file

        """

    @Test func addExplicitInsertsAfterTheLastExplicitItem() throws {
        let result = try edited(text) { try $0.addExplicit(entry("main/docs-viewer 0.3-1")) }
        #expect(result == text.replacingOccurrences(
            of: "@web-template\n", with: "@web-template\nmain/docs-viewer 0.3-1\n"))
    }

    @Test func addExplicitReplacesInPlaceKeepingTheCommentColumn() throws {
        let shorter = try edited(text) { try $0.addExplicit(entry("main/tinyhttpd 1.5-1")) }
        #expect(shorter == text.replacingOccurrences(
            of: "main/tinyhttpd 1.4-2          #", with: "main/tinyhttpd 1.5-1          #"))
        let longer = try edited(text) { try $0.addExplicit(entry("=main/tinyhttpd 1.5.0+really1.4.2-10")) }
        #expect(longer.contains("\n=main/tinyhttpd 1.5.0+really1.4.2-10 # provides httpd\n"))
        let otherRepository = try edited(text) { try $0.addExplicit(entry("backports/tinyhttpd")) }
        #expect(otherRepository.contains("\nbackports/tinyhttpd           # provides httpd\n"))
        #expect(try LDF.parse(otherRepository, file: "t").explicitEntries.count == 1)
    }

    @Test func addExplicitPromotesAnImplicitEntry() throws {
        let result = try edited(text) { try $0.addExplicit(entry("main/base-files")) }
        let ldf = try LDF.parse(result, file: "t")
        #expect(ldf.explicitEntries.map(\.layer) == ["tinyhttpd", "base-files"])
        #expect(ldf.implicitEntries.map(\.layer) == ["tinyhttpd-config"])
        #expect(!result.contains("main/base-files 1.2-1"))
    }

    @Test func addExplicitToAnEmptyOrCommentOnlyLDF() throws {
        #expect(try edited("") { try $0.addExplicit(entry("main/aa 1")) } == "main/aa 1\n")
        var fresh = LDF()
        try fresh.addExplicit(entry("=main/aa 1"))
        #expect(fresh.render() == "=main/aa 1\n")
        #expect(try edited("# new appliance\n\n") { try $0.addExplicit(entry("main/aa")) }
            == "# new appliance\n\nmain/aa\n")
    }

    @Test func addExplicitRefusesEntriesThatCannotBeWritten() throws {
        var ldf = try LDF.parse(text, file: "t")
        #expect(parseError { try ldf.addExplicit(entry("=main/aa")) }
            == "held layer '=main/aa' needs a version ('=' holds a layer at the version given)")
        #expect(parseError { try ldf.addExplicit(LDFEntry(repository: "main", layer: "Ab")) }
            == "invalid layer name 'Ab': must start with a lowercase letter or digit")
        #expect(ldf.render() == text)
    }

    @Test func removeExplicitDropsOnlyItsLine() throws {
        var removed = false
        let result = try edited(text) { removed = $0.removeExplicit(repository: "main", layer: "tinyhttpd") }
        #expect(removed)
        #expect(result == text.replacingOccurrences(of: "main/tinyhttpd 1.4-2          # provides httpd\n", with: ""))
        var ldf = try LDF.parse(text, file: "t")
        let otherRepository = ldf.removeExplicit(repository: "other", layer: "tinyhttpd")
        let implicit = ldf.removeExplicit(repository: "main", layer: "base-files")
        #expect(!otherRepository)
        #expect(!implicit, "implicit entries are not removed")
        #expect(ldf.render() == text)
    }

    @Test func removingTheLastExplicitItemDropsTheImplicitEntries() throws {
        let result = try edited("main/aa 1   # a\n\n# resolver\nmain/bb 2\n# end\n") {
            $0.removeExplicit(repository: "main", layer: "aa")
        }
        #expect(result == "\n# resolver\n# end\n")
    }

    @Test func holdAndUnhold() throws {
        var ldf = try LDF.parse(text, file: "t")
        #expect(try ldf.hold(repository: "main", layer: "tinyhttpd"))
        #expect(ldf.render().contains("\n=main/tinyhttpd 1.4-2         # provides httpd\n"))
        #expect(ldf.explicitEntries[0].held)
        let unheld = ldf.unhold(repository: "main", layer: "tinyhttpd")
        #expect(unheld)
        #expect(ldf.render() == text)
        let unheldImplicit = ldf.unhold(repository: "main", layer: "base-files")
        #expect(!unheldImplicit)

        #expect(try ldf.hold(repository: "main", layer: "tinyhttpd", version: DebianVersion("1.3-1")))
        #expect(ldf.explicitEntries == [try entry("=main/tinyhttpd 1.3-1")])

        #expect(try ldf.hold(repository: "main", layer: "base-files"))
        #expect(ldf.explicitEntries.last == (try entry("=main/base-files 1.2-1")))
        #expect(ldf.implicitEntries.map(\.layer) == ["tinyhttpd-config"])
        #expect(try !ldf.hold(repository: "main", layer: "absent"))
        _ = try LDF.parse(ldf.render(), file: "rendered")

        var unversioned = try LDF.parse("main/aa\n", file: "t")
        #expect(parseError { _ = try unversioned.hold(repository: "main", layer: "aa") }
            == "cannot hold main/aa: no version given, and the LDF names none")
    }

    @Test func setImplicitSortsAndKeepsComments() throws {
        let result = try edited(text) {
            try $0.setImplicit([
                entry("main/tinyhttpd-config 1.1-1"), entry("main/zlib 1"), entry("main/adduser 3"),
                entry("main/tinyhttpd 9"),  // explicit already: skipped
            ])
        }
        #expect(result == """
            # web appliance
            main/tinyhttpd 1.4-2          # provides httpd
            @web-template
            # trailing note of the explicit block

            # resolver output
            main/adduser 3
            # config comes with the server
            main/tinyhttpd-config 1.1-1   # pre-depends
            main/zlib 1
            # end of file

            """)
    }

    @Test func setImplicitKeepsCommentsOfDroppedEntries() throws {
        let result = try edited("main/aa\n\n# head\nmain/bb 1\n# about c\nmain/cc 1\n# about d\nmain/dd 1\n") {
            try $0.setImplicit([entry("main/dd 1"), entry("main/bb 2")])
        }
        #expect(result == "main/aa\n\n# head\nmain/bb 2\n# about d\nmain/dd 1\n# about c\n")
    }

    @Test func setImplicitCreatesTheSeparatorAndCanEmptyTheBlock() throws {
        let added = try edited("main/aa 1\n# note") { try $0.setImplicit([entry("main/bb 2")]) }
        #expect(added == "main/aa 1\n# note\n\nmain/bb 2")
        #expect(try edited("main/aa 1\n") { try $0.setImplicit([]) } == "main/aa 1\n")
        #expect(try edited("main/aa 1\n\nmain/bb 2\n# kept\n") { try $0.setImplicit([]) } == "main/aa 1\n\n# kept\n")
    }

    @Test func setImplicitRefusesWhatCannotBeWritten() throws {
        var ldf = try LDF.parse(text, file: "t")
        #expect(parseError { try ldf.setImplicit([entry("main/bb 1"), entry("other/bb 2")]) }
            == "layer 'bb' given twice for the implicit block")
        var empty = LDF()
        #expect(parseError { try empty.setImplicit([entry("main/bb 1")]) }
            == "an LDF with no explicit layer or include cannot have implicit layers")
        #expect(ldf.render() == text)
    }
}

@Suite struct LDFIncludeTests {
    /// A fresh directory holding `files` (relative path → contents).
    private func directory(_ files: [String: String]) throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ldf-\(UUID().uuidString)")
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return root
    }

    @Test func followsIncludesRecursivelyOnceEach() throws {
        let root = try directory([
            "app.ldf": "# app\n@web\nmain/app 1\n@sub/db\n\nmain/implicit 1\n",
            "web.ldf": "@base\nmain/httpd 2\n",
            "sub/db": "@../base\nmain/db 3\n",
            "base.ldf": "main/base-files 1\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let expanded = try LDF.loadExpanded(root.appendingPathComponent("app.ldf"))
        #expect(expanded.entries.map(\.entry.layer) == ["base-files", "httpd", "app", "db"])
        #expect(expanded.entries.map { "\(URL(fileURLWithPath: $0.source.file).lastPathComponent):\($0.source.line)" }
            == ["base.ldf:1", "web.ldf:2", "app.ldf:3", "db:2"])
        #expect(expanded.includeOrder.map(\.lastPathComponent) == ["base.ldf", "web.ldf", "db", "app.ldf"])
        #expect(expanded.root.implicitEntries.map(\.layer) == ["implicit"])
    }

    @Test func stackingOrderPutsEachFileAboveItsIncludesInIncludeOrder() throws {
        let root = try directory([
            "app.ldf": "@web\nmain/app-config 1\n@db\n",
            "web.ldf": "@base\nmain/web-config 1\n",
            "db.ldf": "@base\nmain/db-config 1\n",
            "base.ldf": "main/base-files 1\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let expanded = try LDF.loadExpanded(root.appendingPathComponent("app.ldf"))
        #expect(expanded.stackingOrder.map { URL(fileURLWithPath: $0).lastPathComponent } == ["app.ldf", "web.ldf", "base.ldf", "db.ldf"])
    }

    @Test func anLDFWithoutAnImplicitBlockTakesItsTemplates() throws {
        let root = try directory([
            "appliance.ldf": "@web\n@db\n",
            "own.ldf": "@web\nmain/extra\n\nmain/libc 9\n",
            "web.ldf": "main/httpd\n\nmain/libc 2\nmain/libssl 3\n",
            "db.ldf": "main/db\n\nmain/libc 1\nmain/libdb 4\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        let inherited = try LDF.loadExpanded(root.appendingPathComponent("appliance.ldf")).implicitEntries
        #expect(inherited.map(\.entry.description) == ["main/libc 2", "main/libssl 3", "main/libdb 4"], "the first template naming a layer wins")
        #expect(inherited.map { "\(URL(fileURLWithPath: $0.source.file).lastPathComponent):\($0.source.line)" } == ["web.ldf:3", "web.ldf:4", "db.ldf:4"])
        let own = try LDF.loadExpanded(root.appendingPathComponent("own.ldf")).implicitEntries
        #expect(own.map(\.entry.description) == ["main/libc 9"], "an implicit block of its own replaces the templates'")
    }

    @Test func homeTemplatesAreFoundAfterTheIncludingFilesDirectory() throws {
        let root = try directory(["site/a.ldf": "", "site/t.ldf": "", "home/templates/t.ldf": "", "home/templates/only.ldf": ""])
        defer { try? FileManager.default.removeItem(at: root) }
        let home = StrataHome(explicit: root.appendingPathComponent("home").path)
        let from = root.appendingPathComponent("site/a.ldf")
        #expect(home.resolveInclude("t", from: from)?.path == root.appendingPathComponent("site/t.ldf").path)
        #expect(home.resolveInclude("only", from: from)?.path == root.appendingPathComponent("home/templates/only.ldf").path)
        #expect(home.resolveInclude("sub/only", from: from) == nil)
        #expect(LDF.defaultIncludeResolver(name: "only", from: from) == nil)
    }

    @Test func theDefaultResolverTriesNameBeforeNameDotLdf() throws {
        let root = try directory(["a.ldf": "", "t": "", "t.ldf": "", "dir.ldf": "", "dir/x": ""])
        defer { try? FileManager.default.removeItem(at: root) }
        let from = root.appendingPathComponent("a.ldf")
        #expect(LDF.defaultIncludeResolver(name: "t", from: from)?.lastPathComponent == "t")
        #expect(LDF.defaultIncludeResolver(name: "dir", from: from)?.lastPathComponent == "dir.ldf")
        #expect(LDF.defaultIncludeResolver(name: "a", from: from)?.lastPathComponent == "a.ldf")
        #expect(LDF.defaultIncludeResolver(name: "missing", from: from) == nil)
        let absolute = root.appendingPathComponent("t.ldf").path
        #expect(LDF.defaultIncludeResolver(name: absolute, from: URL(fileURLWithPath: "/elsewhere/x.ldf"))?.path == absolute)
    }

    @Test func namesTheLineOfAMissingTemplate() throws {
        let root = try directory(["app.ldf": "main/aa\n@web\n", "web.ldf": "main/bb\n# c\n@gone\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(parseError { _ = try LDF.loadExpanded(root.appendingPathComponent("app.ldf")) }
            == "\(root.path)/web.ldf:3: template 'gone' not found")
    }

    @Test func detectsIncludeCycles() throws {
        let root = try directory([
            "a.ldf": "main/xx\n@b\n", "b.ldf": "# b\n@c\n", "c.ldf": "@a\n", "self.ldf": "@self\n",
        ])
        defer { try? FileManager.default.removeItem(at: root) }
        // Relative URLs keep relative names in messages, as the user typed them.
        func relative(_ name: String) -> URL {
            URL(fileURLWithPath: name, relativeTo: URL(fileURLWithPath: root.path, isDirectory: true))
        }
        #expect(parseError { _ = try LDF.loadExpanded(relative("a.ldf")) }
            == "c.ldf:1: include cycle: a.ldf -> b.ldf -> c.ldf -> a.ldf")
        #expect(parseError { _ = try LDF.loadExpanded(relative("b.ldf")) }
            == "a.ldf:2: include cycle: b.ldf -> c.ldf -> a.ldf -> b.ldf")
        #expect(parseError { _ = try LDF.loadExpanded(relative("self.ldf")) }
            == "self.ldf:1: include cycle: self.ldf -> self.ldf")
    }

    @Test func reportsUnreadableFilesAndParseErrorsInTemplates() throws {
        let root = try directory(["app.ldf": "@bad\n", "bad.ldf": "main/aa\nnonsense\n"])
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(parseError { _ = try LDF.loadExpanded(root.appendingPathComponent("app.ldf")) }
            == "\(root.path)/bad.ldf:2: expected 'repository/layer [version]', found 'nonsense'")
        let missing = parseError { _ = try LDF.loadExpanded(root.appendingPathComponent("none.ldf")) }
        #expect(missing == "\(root.path)/none.ldf: cannot read: No such file or directory")
        let viaResolver = parseError {
            _ = try LDF.loadExpanded(root.appendingPathComponent("app.ldf")) { _, _ in root.appendingPathComponent("gone.ldf") }
        }
        #expect(viaResolver == "\(root.path)/app.ldf:1: cannot read template 'bad' (\(root.path)/gone.ldf): No such file or directory")
    }
}

/// The sample LDFs parse, round-trip, and record a correct resolution over the sample layers.
@Suite struct SampleLDFTests {
    @Test func sampleLDFsAreCorrectResolutions() throws {
        let layers = try loadSampleLayers().map(\.metadata)
        let directory = repositoryRoot.appendingPathComponent("LDF")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".ldf") }
        #expect(names.count >= 2)
        var sawInclude = false, sawHold = false
        for name in names {
            let url = directory.appendingPathComponent(name)
            let text = try String(contentsOf: url, encoding: .utf8)
            #expect(try LDF.parse(text, file: name).render() == text)
            let expanded = try LDF.loadExpanded(url)
            sawInclude = sawInclude || expanded.includeOrder.count > 1
            let chosen = expanded.entries.map(\.entry) + expanded.root.implicitEntries
            sawHold = sawHold || chosen.contains(where: \.held)

            let units = try chosen.map { entry in
                try #require(layers.first { $0.name == entry.layer && $0.version == entry.version },
                             "\(name): no sample layer \(entry)")
            }
            #expect(Set(units.map(\.name)).count == units.count, "\(name): a layer is listed twice")
            func satisfies(_ unit: LayerMetadata, _ relation: Relation) -> Bool {
                if unit.name == relation.name {
                    return relation.constraint?.isSatisfied(by: unit.version) ?? true
                }
                // Provides without a version satisfy only unversioned relations, as in Debian.
                return relation.constraint == nil && unit.provides.contains { $0.name == relation.name }
            }
            // Which units some dependency of `unit` picks, taking the first satisfied alternative.
            func needs(_ unit: LayerMetadata) throws -> [String] {
                try (unit.preDepends + unit.depends).map { alternatives in
                    let picked = alternatives.lazy.compactMap { relation in units.first { satisfies($0, relation) } }.first
                    return try #require(picked, "\(name): \(unit.name) needs \(Relation.render([alternatives]))").name
                }
            }
            for unit in units {
                _ = try needs(unit)
                for other in units where other.name != unit.name {
                    #expect(!(unit.conflicts + unit.breaks).contains { satisfies(other, $0) },
                            "\(name): \(unit.name) conflicts with \(other.name)")
                }
            }
            // Every implicit layer is needed by an explicit one, directly or not.
            var reached = Set(expanded.entries.map(\.entry.layer))
            var queue = Array(reached)
            while let next = queue.popLast() {
                for needed in try needs(units.first { $0.name == next }!) where reached.insert(needed).inserted {
                    queue.append(needed)
                }
            }
            #expect(reached == Set(units.map(\.name)), "\(name): implicit layers nothing needs")
        }
        #expect(sawInclude && sawHold)
    }
}
