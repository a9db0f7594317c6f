import Foundation
import StrataStore
import StrataTestSupport
import Testing

/// `strata ldf resolve|add|remove|hold|unhold|upgrade` on the sample layers and LDFs.
@Suite struct LDFCommandTests {
    /// A workspace whose `main` repository holds the sample layers, with copies of the sample LDFs.
    func samples(_ label: String = #function) throws -> Workspace {
        let workspace = try Workspace(label)
        let layers = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Layers").sorted().map { packageRoot + "/Layers/" + $0 }
        try expectSuccess(workspace.strata(["layer", "import", "main"] + layers))
        for name in ["web-template", "docs-appliance", "kiosk-ng"] {
            try workspace.scratch.write(name + ".ldf", try String(contentsOfFile: "\(packageRoot)/LDF/\(name).ldf", encoding: .utf8))
        }
        return workspace
    }

    func path(_ workspace: Workspace, _ name: String) -> String { workspace.scratch.path + "/" + name }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func sampleLDFsResolveToThemselves() throws {
        let workspace = try samples()
        for name in ["web-template", "docs-appliance", "kiosk-ng"] {
            let file = path(workspace, name + ".ldf")
            let run = expectSuccess(try workspace.strata("ldf", "resolve", file))
            #expect(run.stdout == (try read(file)), "\(name)")
        }
    }

    @Test func resolveWritesAtomicallyAndReportsChanges() throws {
        let workspace = try samples()
        let file = path(workspace, "app.ldf")
        try workspace.scratch.write("app.ldf", "# docs\nmain/docs-viewer\n")
        let printed = expectSuccess(try workspace.strata("ldf", "resolve", file))
        #expect(try read(file) == "# docs\nmain/docs-viewer\n", "without --write the file is untouched")
        let written = expectSuccess(try workspace.strata("ldf", "resolve", file, "--write"))
        #expect(try read(file) == printed.stdout)
        // httpd is virtual with two providers: libsolv picks among them (here tinyhttpd-ng).
        #expect(printed.stdout == "# docs\nmain/docs-viewer 0.3-1\n\nmain/base-files 1.2-1\nmain/greet 2.0-1\nmain/libgreet 1.1-1\nmain/tinyhttpd-config 1.0-1\nmain/tinyhttpd-ng 2.0-1\n")
        #expect(written.stdout == "+ main/base-files 1.2-1\n~ main/docs-viewer (none) -> 0.3-1\n+ main/greet 2.0-1\n+ main/libgreet 1.1-1\n+ main/tinyhttpd-config 1.0-1\n+ main/tinyhttpd-ng 2.0-1\n")
    }

    @Test func editingVerbsRewriteTheLDF() throws {
        let workspace = try samples()
        let file = path(workspace, "app.ldf")
        try workspace.scratch.write("app.ldf", "main/greet\n")
        expectSuccess(try workspace.strata("ldf", "add", file, "main/tinyhttpd-ng", "docs-viewer"))
        #expect(try read(file) == "main/greet 2.0-1\nmain/tinyhttpd-ng 2.0-1\nmain/docs-viewer 0.3-1\n\nmain/base-files 1.2-1\nmain/libgreet 1.1-1\nmain/tinyhttpd-config 1.0-1\n")
        let held = expectSuccess(try workspace.strata("ldf", "hold", file, "main/libgreet=1.0-1"))
        #expect(held.stdout == "~ main/libgreet 1.1-1 -> 1.0-1\n")
        #expect(try read(file).contains("=main/libgreet 1.0-1\n"))
        expectSuccess(try workspace.strata("ldf", "unhold", file, "libgreet"))
        let upgraded = expectSuccess(try workspace.strata("ldf", "upgrade", file))
        #expect(upgraded.stdout == "~ main/libgreet 1.0-1 -> 1.1-1\n")
        expectSuccess(try workspace.strata("ldf", "remove", file, "main/greet", "main/docs-viewer", "main/libgreet"))
        #expect(try read(file) == "main/tinyhttpd-ng 2.0-1\n\nmain/base-files 1.2-1\nmain/tinyhttpd-config 1.0-1\n")
    }

    @Test func unsatisfiableLDFIsExplainedAndLeftUntouched() throws {
        let workspace = try samples()
        let file = path(workspace, "both.ldf")
        let text = "# two web servers\nmain/tinyhttpd-ng\n@web-template\n"
        try workspace.scratch.write("both.ldf", text)
        let template = path(workspace, "web-template.ldf")
        for arguments in [["resolve", file, "--write"], ["add", file, "main/greet"]] {
            let run = try workspace.strata(["ldf"] + arguments)
            #expect(run.status != 0)
            #expect(run.stderr.contains("main/tinyhttpd-ng 2.0-1 (\(file):2) conflicts with tinyhttpd, which main/tinyhttpd 1.4-2 (\(template):8) is"), "\(run.stderr)")
            #expect(run.stderr.contains("remove main/tinyhttpd-ng from \(file):2"), "\(run.stderr)")
            #expect(run.stderr.contains("remove main/tinyhttpd from \(template):8"), "\(run.stderr)")
            #expect(try read(file) == text)
        }
    }

    @Test func badReferencesAreRefused() throws {
        let workspace = try samples()
        let file = path(workspace, "web-template.ldf")
        let before = try read(file)
        let missing = try workspace.strata("ldf", "add", file, "main/nothing-here")
        #expect(missing.status != 0 && missing.stderr.contains(":9: no layer 'nothing-here' in repository 'main'"), "\(missing.stderr)")
        let noName = try workspace.strata("ldf", "add", file)
        #expect(noName.status != 0 && noName.stderr.contains("name at least one layer"))
        let badVersion = try workspace.strata("ldf", "add", file, "main/greet=")
        #expect(badVersion.status != 0 && badVersion.stderr.contains("expected REPO/NAME"), "\(badVersion.stderr)")
        #expect(try read(file) == before)
        for verb in ["resolve", "add", "remove", "hold", "unhold", "upgrade"] {
            expectSuccess(try workspace.strata("ldf", verb, "--help"))
        }
    }
}
