import Foundation
import StrataStore
import StrataTestSupport
import Testing

@Suite struct LayerCommandTests {
    @Test func sampleLayersImportListAndCheckOut() throws {
        let workspace = try Workspace()
        let samples = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Layers").sorted().map { packageRoot + "/Layers/" + $0 }
        #expect(samples.count >= 5)
        let imported = expectSuccess(try workspace.strata(["layer", "import", "main"] + samples))
        let lines = imported.stdout.split(separator: "\n")
        #expect(lines.count == samples.count)
        for line in lines {
            let fields = line.split(separator: " ")
            #expect(fields.count == 3 && Digest(fields[2]) != nil, "import prints 'name version digest': \(line)")
        }

        let listing = expectSuccess(try workspace.strata("layer", "list", "main", "--json"))
        let layers = try JSONSerialization.jsonObject(with: Data(listing.stdout.utf8)) as! [[String: Any]]
        #expect(Set(layers.map { "\($0["name"]!)_\($0["version"]!)" }) == Set(samples.map { ($0 as NSString).lastPathComponent }))

        // Importing the same layers again is a no-op that prints the same digests.
        #expect(expectSuccess(try workspace.strata(["layer", "import", "main"] + samples)).stdout == imported.stdout)

        // The layer-format checkout reproduces the sample directory.
        let sample = samples[0]
        let unit = (sample as NSString).lastPathComponent
        let name = String(unit.split(separator: "_")[0])
        let version = String(unit.split(separator: "_")[1])
        expectSuccess(try workspace.strata("layer", "checkout", "main", "\(name)=\(version)", workspace.scratch.path + "/unit", "--layer-format"))
        try shell("diff -r '\(sample)/filesystem' '\(workspace.scratch.path)/unit/\(unit)/filesystem'")
        expectSuccess(try workspace.strata("fsck"))
    }

    /// A `.deb` imports as dpkg unpacks it on a merged-/usr Debian 12 system (`MergedUsr`): `dpkg-deb -x`,
    /// then each aliased directory (`bin`, `sbin`, `lib`, `lib64`) moved into `/usr`, as dpkg's writes go
    /// through the symlinks there; `base-files` also carries the symlinks. dpkg's own paths stay in the
    /// layer's file list.
    @Test func debianPackagesCheckOutIdenticalToDpkg() throws {
        let workspace = try Workspace()
        let packages = try downloadedPackages()
        let imported = expectSuccess(try workspace.strata(["layer", "import", "main"] + packages))
        #expect(imported.stdout.split(separator: "\n").count == packages.count)
        // Metadata of every file: path, type, mode, owner, size, link count, symlink target.
        let describe = "find . -printf '%p %y %m %U %G %s %n %l\\n' | sort"
        // The same plus nanosecond mtimes, for everything dpkg-deb -x restores (it leaves directories at extraction time).
        let times = "find . ! -type d -printf '%p %T@\\n' | sort"
        for package in packages {
            let name = try shell("dpkg-deb -f '\(package)' Package").trimmingCharacters(in: .whitespacesAndNewlines)
            let base = "\(workspace.scratch.path)/\(name)"
            try shell("mkdir -p '\(base)/dpkg' && dpkg-deb -x '\(package)' '\(base)/dpkg'")
            try shell("""
                cd '\(base)/dpkg' && for d in bin sbin lib lib64; do
                  if [ -d "$d" ] && [ ! -L "$d" ]; then mkdir -p "usr/$d" && cp -a "$d/." "usr/$d/" && rm -rf "$d"; fi
                  if [ '\(name)' = base-files ]; then mkdir -p "usr/$d"; ln -s "usr/$d" "$d"; touch -h -d @0 "$d"; fi
                done
                """)
            expectSuccess(try workspace.strata("layer", "checkout", "main", name, base + "/strata"))
            for command in [describe, times] {
                #expect(try shell("cd '\(base)/dpkg' && \(command)") == (try shell("cd '\(base)/strata' && \(command)")), "\(name): \(command)")
            }
            // Directory times, which dpkg-deb -x and tar do not restore faithfully, straight from the archive.
            let wrongTimes = try shell("""
                dpkg-deb --fsys-tarfile '\(package)' | python3 -c "
                import os, sys, tarfile
                members = [m for m in tarfile.open(fileobj=sys.stdin.buffer, mode='r|') if m.isdir()]
                names = {os.path.normpath(m.name) for m in members}
                for member in members:
                    name = os.path.normpath(member.name)
                    top = name.split('/')[0]
                    if top in ('bin', 'sbin', 'lib', 'lib64'):
                        if name == top and 'usr/' + top in names: continue  # its /usr twin's metadata wins
                        name = 'usr/' + name
                    if int(os.lstat(os.path.join('\(base)/strata', name)).st_mtime) != member.mtime:
                        print(member.name)"
                """)
            let list = try shell("dpkg-deb --fsys-tarfile '\(package)' | tar tf - | sed -e 's|^\\./|/|' -e 's|/$||' -e 's|^$|/.|'")
            expectSuccess(try workspace.strata("layer", "checkout", "main", name, base + "/unit", "--layer-format"))
            let unit = try FileManager.default.contentsOfDirectory(atPath: base + "/unit")[0]
            #expect(try String(contentsOfFile: "\(base)/unit/\(unit)/scripts/list", encoding: .utf8) == list, "\(name): dpkg's file list")
            #expect(wrongTimes.isEmpty, "\(name): directory mtimes differ from the archive: \(wrongTimes)")
            try shell("diff -r --no-dereference '\(base)/dpkg' '\(base)/strata'")
        }
        let facts = try shell("cd '\(workspace.scratch.path)' && find */strata -perm -4000 | wc -l; find */strata -type f -links +1 | wc -l; find */strata -type d -empty | wc -l")
        let counts = facts.split(separator: "\n").compactMap { Int($0) }
        #expect(counts.count == 3 && counts.allSatisfy { $0 > 0 }, "setuid files, hard links and empty directories were all exercised: \(counts)")
        expectSuccess(try workspace.strata("fsck"))
    }

    @Test func plainDirectoryAndTarballNeedMetadataOnTheCommandLine() throws {
        let workspace = try Workspace()
        try workspace.scratch.write("tree/usr/share/hello/README", "hi\n")
        let refused = try workspace.strata("layer", "import", "main", workspace.scratch.path + "/tree")
        #expect(refused.status != 0 && refused.stderr.contains("--name"))
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/tree", "--name", "hello-data", "--version", "1.0",
                                           "--depends", "libc6 (>= 2.36) | libc6-alt"))
        try shell("tar -C '\(workspace.scratch.path)/tree' -czf '\(workspace.scratch.path)/tree.tgz' .")
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/tree.tgz", "--name", "hello-data", "--version", "1.1"))
        let shown = expectSuccess(try workspace.strata("layer", "show", "main", "hello-data=1.0")).stdout
        #expect(shown.contains("Depends: libc6 (>= 2.36) | libc6-alt"))
        // Without a version, the newest is chosen.
        #expect(expectSuccess(try workspace.strata("layer", "show", "main", "hello-data")).stdout.contains("Version: 1.1"))
        expectSuccess(try workspace.strata("layer", "withdraw", "main", "hello-data=1.1"))
        #expect(expectSuccess(try workspace.strata("layer", "show", "main", "hello-data")).stdout.contains("Version: 1.0"))
        #expect(try workspace.strata("layer", "list", "main").stdout.split(separator: "\n").count == 1)
        #expect(try workspace.strata("layer", "list", "main", "--all").stdout.contains("withdrawn"))
    }

    @Test func anIndexMadeBeforePathListsGainsThemWithItsFirstChange() throws {
        let workspace = try Workspace()
        let samples = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Layers").sorted().map { packageRoot + "/Layers/" + $0 }
        expectSuccess(try workspace.strata(["layer", "import", "main"] + samples))
        func pathLists() throws -> [String: String] {
            let listed = expectSuccess(try workspace.strata("layer", "list", "main", "--json", "--all")).stdout
            let layers = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: layers.map { ("\($0["name"]!) \($0["version"]!)", $0["paths"] as? String ?? "none") })
        }
        let before = try pathLists()
        #expect(before.count == samples.count && before.values.allSatisfy { $0.hasPrefix("sha256:") }, "\(before)")
        try shell("python3 -c \"import sqlite3; c = sqlite3.connect('\(workspace.repository)/index.sqlite'); c.execute('ALTER TABLE layers DROP COLUMN paths'); c.commit()\"")
        #expect(try pathLists().values.allSatisfy { $0 == "none" }, "reading leaves the index as it was (and as it was signed)")
        expectSuccess(try workspace.strata("layer", "withdraw", "main", "greet=2.0-1"))
        #expect(try pathLists() == before)
        expectSuccess(try workspace.strata("fsck"))
    }

    @Test func indexRebuildsFromTheStore() throws {
        let workspace = try Workspace()
        let samples = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/Layers").sorted().map { packageRoot + "/Layers/" + $0 }
        expectSuccess(try workspace.strata(["layer", "import", "main"] + samples))
        let before = expectSuccess(try workspace.strata("layer", "list", "main", "--json")).stdout
        try FileManager.default.removeItem(atPath: workspace.repository + "/index.sqlite")
        #expect(try workspace.strata("layer", "list", "main").stdout.isEmpty)
        expectSuccess(try workspace.strata("repo", "reindex", "main"))
        #expect(expectSuccess(try workspace.strata("layer", "list", "main", "--json")).stdout == before)
    }
}
