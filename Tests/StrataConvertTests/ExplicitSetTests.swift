import StrataConvert
import StrataLayers
import Testing

/// The minimal explicit set on the graph of VM2Docker's Figure 4-3, and what a resolver would choose.
@Suite struct ExplicitSetTests {
    func package(_ name: String, depends: String = "", provides: String = "", essential: Bool = false) throws -> InstalledPackage {
        var text = "Package: \(name)\nVersion: 1\nStatus: install ok installed\n"
        if !depends.isEmpty { text += "Depends: \(depends)\n" }
        if !provides.isEmpty { text += "Provides: \(provides)\n" }
        if essential { text += "Essential: yes\n" }
        return try InstalledPackages.parse(text, file: "status")[0]
    }

    @Test func sourcesOfTheGraphAndOfItsCyclesAreExplicit() throws {
        // aa → bb → cc, aa → dd → cc; ee ⇄ ff, which nothing outside depends on; hh alone.
        let packages = [
            try package("aa", depends: "bb, dd"), try package("bb", depends: "cc"), try package("cc"), try package("dd", depends: "cc"),
            try package("ee", depends: "ff"), try package("ff", depends: "ee"), try package("hh"),
        ]
        let set = ExplicitSet(packages)
        #expect(set.minimal == ["aa", "ee", "hh"])
        #expect(set.explicit == ["aa", "ee", "hh"])
    }

    @Test func aCycleSomethingDependsOnIsImplicit() throws {
        let set = ExplicitSet([try package("top", depends: "ee"), try package("ee", depends: "ff"), try package("ff", depends: "ee")])
        #expect(set.minimal == ["top"])
    }

    @Test func onlyTheFirstAlternativeAndASoleProviderCount() throws {
        // `xx | yy` with yy installed: a resolver would take xx, so yy stays explicit. `awk` has one provider.
        let set = ExplicitSet([try package("app", depends: "xx | yy, awk"), try package("yy"), try package("mawk", provides: "awk")])
        #expect(set.minimal == ["app", "yy"])
        // With two providers of `awk`, neither is implied.
        let two = ExplicitSet([try package("app", depends: "awk"), try package("mawk", provides: "awk"), try package("gawk", provides: "awk")])
        #expect(two.minimal == ["app", "gawk", "mawk"])
    }

    @Test func whatAnEssentialPackageBringsInIsLeftToResolution() throws {
        let set = ExplicitSet([try package("base", depends: "lib", essential: true), try package("lib"), try package("tool", depends: "lib")])
        #expect(set.minimal == ["base", "tool"])
        #expect(set.explicit == ["tool"])
    }

    @Test func packagesNotFullyInstalledAreLeftOut() throws {
        let status = "Package: gone\nVersion: 1\nStatus: deinstall ok config-files\n\nPackage: here\nVersion: 2\nStatus: install ok installed\n"
        #expect(try InstalledPackages.parse(status, file: "status").map(\.name) == ["here"])
    }
}
