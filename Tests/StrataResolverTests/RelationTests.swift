import Foundation
import StrataLayers
import StrataResolver
import Testing

/// Every relation of the layer metadata, on small hand-written repositories.
@Suite struct ResolverRelationTests {
    @Test func firstSatisfiableAlternativeIsPreferred() throws {
        let world = try World()
        try world.repository("main", [
            "app 1.0": "Depends: zeta | alpha\n",
            "zeta 1.0": "",
            "alpha 1.0": "",
            "tool 1.0": "Depends: ghost | zeta-ng | alpha\n",
            "zeta-ng 1.0": "Conflicts: app\n",
        ])
        // libsolv alone would take alpha: it sorts the alternatives' providers by name.
        #expect(world.units(try world.resolve(try world.ldf("a.ldf", "main/app\n"))) == ["app 1.0", "zeta 1.0"])
        // ghost does not exist and zeta-ng conflicts with app: the next alternative that can be had.
        let both = try world.resolve(try world.ldf("b.ldf", "main/app\nmain/tool\n"))
        #expect(world.units(both) == ["alpha 1.0", "app 1.0", "tool 1.0", "zeta 1.0"])
    }

    @Test func realLayerIsPreferredOverProviders() throws {
        let world = try World()
        try world.repository("main", [
            "app 1.0": "Depends: mailer\n",
            "mailer 1.0": "",
            "aaa-mailer 1.0": "Provides: mailer\n",
        ])
        #expect(world.units(try world.resolve(try world.ldf("a.ldf", "main/app\n"))) == ["app 1.0", "mailer 1.0"])
    }

    @Test func versionedDependenciesChooseMatchingVersions() throws {
        let world = try World()
        try world.repository("main", [
            "app 1.0": "Depends: lib (>= 2.0), other (<< 3)\n",
            "lib 1.0": "", "lib 2.0": "", "lib 3.0": "",
            "other 2.5": "", "other 3.0": "",
        ])
        #expect(world.units(try world.resolve(try world.ldf("a.ldf", "main/app\n"))) == ["app 1.0", "lib 3.0", "other 2.5"])
        let held = try world.ldf("held.ldf", "main/app\n=main/lib 1.0\n")
        let message = world.failure { _ = try world.resolve(held) }
        #expect(message.contains("main/app 1.0 (held.ldf:1) depends on lib (>= 2.0)"), "\(message)")
        #expect(message.contains("main/lib is held at 1.0 in held.ldf:2"), "\(message)")
    }

    @Test func conflictsAreRespectedAndExplained() throws {
        let world = try World()
        try world.repository("main", [
            "web 1.0": "Depends: httpd\n",
            "apache 1.0": "Provides: httpd\nConflicts: nginx\n",
            "nginx 1.0": "Provides: httpd\n",
        ])
        let avoid = try world.resolve(try world.ldf("avoid.ldf", "main/web\nmain/nginx\n"))
        #expect(world.units(avoid) == ["nginx 1.0", "web 1.0"])
        let path = try world.ldf("clash.ldf", "# two servers\nmain/apache\nmain/nginx\n")
        let message = world.failure { _ = try world.resolve(path) }
        #expect(message.contains("main/apache 1.0 (clash.ldf:2) conflicts with nginx, which main/nginx 1.0 (clash.ldf:3) is"), "\(message)")
        #expect(message.contains("remove main/apache from clash.ldf:2"), "\(message)")
        #expect(message.contains("remove main/nginx from clash.ldf:3"), "\(message)")
    }

    @Test func breaksAreRespectedAndNamed() throws {
        let world = try World()
        try world.repository("main", [
            "app 2.0": "Breaks: plugin (<< 2)\n",
            "plugin 1.0": "", "plugin 2.0": "",
        ])
        let upgraded = try world.resolve(try world.ldf("ok.ldf", "main/app\nmain/plugin\n"))
        #expect(world.units(upgraded) == ["app 2.0", "plugin 2.0"])
        let path = try world.ldf("held.ldf", "main/app\n=main/plugin 1.0\n")
        let message = world.failure { _ = try world.resolve(path) }
        #expect(message.contains("main/app 2.0 (held.ldf:1) breaks plugin (<< 2), which main/plugin 1.0 (held.ldf:2) is"), "\(message)")
        #expect(message.contains("release the hold on main/plugin (held.ldf:2)"), "\(message)")
    }

    @Test func providesAndVersionedProvides() throws {
        let world = try World()
        try world.repository("main", [
            "site 1.0": "Depends: httpd, mta (>= 2)\n",
            "tinyhttpd 1.0": "Provides: httpd\n",
            "mta-old 1.0": "Provides: mta (= 1.5)\n",
            "mta-new 1.0": "Provides: mta (= 2.1)\n",
            "mta-plain 1.0": "Provides: mta\n",
        ])
        // An unversioned Provides never satisfies a versioned dependency; mta (= 1.5) is too old.
        #expect(world.units(try world.resolve(try world.ldf("a.ldf", "main/site\n"))) == ["mta-new 1.0", "site 1.0", "tinyhttpd 1.0"])
    }

    @Test func twoUnitsOfOneLayerConflict() throws {
        let world = try World()
        try world.repository("main", ["lib 1.0": "", "lib 2.0": "", "app 1.0": "Depends: lib (>= 2)\n"])
        try world.ldf("base.ldf", "=main/lib 1.0\n")
        let path = try world.ldf("app.ldf", "@base\n=main/lib 2.0\n")
        let message = world.failure { _ = try world.resolve(path) }
        #expect(message.contains("main/lib 2.0 (app.ldf:2) and main/lib 1.0 (base.ldf:1) are two units of one layer"), "\(message)")
    }

    @Test func multiArchAnyNeedsAllowed() throws {
        let world = try World()
        try world.repository("main", [
            "script 1.0": "Depends: interp:any\n",
            "interp 1.0": "Multi-Arch: foreign\n",
            "runner 1.0": "Depends: shell:any (>= 2)\n",
            "shell 2.0": "Multi-Arch: allowed\n",
        ])
        #expect(world.units(try world.resolve(try world.ldf("ok.ldf", "main/runner\n"))) == ["runner 1.0", "shell 2.0"])
        let message = world.failure { _ = try world.resolve(try world.ldf("bad.ldf", "main/script\n")) }
        #expect(message.contains("main/script 1.0 (bad.ldf:1) depends on interp:any, which no layer provides (available: main/interp 1.0)"), "\(message)")
    }

    @Test func preDependsOrderConfiguration() throws {
        let world = try World()
        try world.repository("main", [
            "zz-config 1.0": "",
            "daemon 1.0": "Pre-Depends: zz-config\nDepends: aa-lib\n",
            "aa-lib 1.0": "Pre-Depends: zz-config\n",
        ])
        let resolution = try world.resolve(try world.ldf("a.ldf", "main/daemon\n")).resolution
        let order = resolution.units.map(\.name)
        #expect(order.firstIndex(of: "zz-config")! < order.firstIndex(of: "aa-lib")!)
        #expect(order.firstIndex(of: "aa-lib")! < order.firstIndex(of: "daemon")!)
        #expect(resolution.unit(named: "daemon")?.preDepends == ["zz-config"])
    }

    @Test func baseLayersAreAlwaysIncluded() throws {
        let world = try World()
        try world.repository("main", ["base-files 1.0": "Essential: yes\n", "app 1.0": ""])
        try world.repository("other", ["tool 1.0": ""])
        let resolved = try world.resolve(try world.ldf("a.ldf", "main/app\n"))
        #expect(world.units(resolved) == ["app 1.0", "base-files 1.0"])
        #expect(resolved.text == "main/app 1.0\n\nmain/base-files 1.0\n")
        // Only repositories the LDF names contribute base layers.
        #expect(world.units(try world.resolve(try world.ldf("b.ldf", "other/tool\n"))) == ["tool 1.0"])
    }

    @Test func repositoryPriorityFollowsTheRepositoriesFile() throws {
        let world = try World()
        try world.repository("local", ["lib 1.0": "", "extra 1.0": ""])
        try world.repository("main", ["app 1.0": "Depends: lib\n", "lib 2.0": ""])
        // Both repositories offer lib: the earlier line of the repositories file wins over a newer version.
        let both = try world.resolve(try world.ldf("a.ldf", "main/app\nlocal/extra\n"))
        #expect(both.text == "main/app 1.0\nlocal/extra 1.0\n\nlocal/lib 1.0\n")
        // The pool holds only the repositories the LDF names.
        let one = try world.resolve(try world.ldf("b.ldf", "main/app\n"))
        #expect(one.text == "main/app 1.0\n\nmain/lib 2.0\n")
    }
}
