import Foundation
import StrataStore
import StrataTestSupport
import Testing

/// `strata export oci` and `strata import oci`, checked by tools no one here wrote: umoci unpacks what
/// Strata exports and must find the VLFS's tree, skopeo converts it to a docker archive, and an image
/// umoci builds imports and mounts with its files and deletions.
@Suite(.serialized) struct OCITests {
    /// A software layer and a configuration layer above it that changes a file, deletes one (a 0:0
    /// character device) and makes a directory opaque, as `ConfigLayer` writes them; and their LDF.
    static func layers(in workspace: Workspace) throws -> String {
        let base = workspace.scratch.path + "/base_1.0"
        let site = workspace.scratch.path + "/site_1"
        try workspace.scratch.write("base_1.0/metadata", "Layer: base\nVersion: 1.0\nArchitecture: all\n")
        try workspace.scratch.write("site_1/metadata", "Layer: site\nVersion: 1\nArchitecture: all\nLayer-Type: config\n")
        try shell("""
            set -e
            cd '\(base)' && mkdir -p filesystem/etc filesystem/usr/bin filesystem/data/old filesystem/srv/www && cd filesystem
            printf 'port 80\\n' > etc/app.conf && printf 'bye\\n' > etc/remove-me
            printf '#!/bin/sh\\necho tool\\n' > usr/bin/tool && chmod 0755 usr/bin/tool && ln -s tool usr/bin/t
            ln usr/bin/tool usr/bin/tool-again
            printf 'secret\\n' > srv/www/key && chown 33:33 srv/www/key && chmod 0640 srv/www/key && chown 33:33 srv/www
            printf 'a\\n' > data/old/a && printf 'b\\n' > data/old/b && chmod 1777 data/old
            cd '\(site)' && mkdir -p filesystem/etc filesystem/data/old && cd filesystem
            printf 'port 8080\\n' > etc/app.conf && mknod etc/remove-me c 0 0 && chmod 0 etc/remove-me && touch -h -d @0 etc/remove-me
            printf 'c\\n' > data/old/c && setfattr -n trusted.overlay.opaque -v y data/old
            """)
        expectSuccess(try workspace.strata("layer", "import", "main", base, site))
        let ldf = workspace.scratch.path + "/app.ldf"
        try AtomicFile.write("main/base 1.0\n=main/site 1\n", to: ldf)
        return ldf
    }

    /// Every entry below `directory` (not the root itself), with what a composition and an unpacked
    /// image can both say: directory times are left out (unpacking a member into a directory changes
    /// its time), and so are the VLFS's own `user.strata.*` facts, the opaque mark a configuration
    /// layer's directory shows as an attribute (OCI says it with a `.wh..wh..opq` member), and link
    /// counts (the VLFS counts a shared hard-link set as the names it shows; the tests check links by inode).
    static func tree(_ directory: String, store: ObjectStore) throws -> [String: TreeEntry] {
        try listing(of: directory, store: store).entries.mapValues { entry in
            var entry = entry
            if entry.kind == .directory {
                entry.mtime = Timestamp(seconds: 0)
                entry.digest = nil
            }
            entry.linkGroup = 0
            entry.xattrs.removeAll { $0.name.hasPrefix("user.strata.") || $0.name.hasPrefix("trusted.overlay.") }
            return entry
        }
    }

    static func expectSameTree(_ a: String, _ b: String, store: ObjectStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let left = try tree(a, store: store)
        let right = try tree(b, store: store)
        for path in Set(left.keys).union(right.keys).sorted() where left[path] != right[path] {
            Issue.record("/\(path): \(left[path].map { "\($0)" } ?? "absent") in \(a), \(right[path].map { "\($0)" } ?? "absent") in \(b)", sourceLocation: sourceLocation)
        }
    }

    /// `umoci unpack` of `layout`'s image tagged `tag` into `bundle`; its root filesystem.
    static func unpack(_ layout: String, tag: String = "latest", into bundle: String) throws -> String {
        try shell("umoci unpack --image '\(layout):\(tag)' '\(bundle)' >/dev/null 2>&1")
        return bundle + "/rootfs"
    }

    @Test func anExportedLDFUnpacksWithUmociToTheVLFSTreeAndSkopeoReadsIt() throws {
        let workspace = try Workspace("oci-ldf")
        let ldf = try Self.layers(in: workspace)
        let layout = workspace.scratch.path + "/layout"
        let exported = expectSuccess(try workspace.strata("export", "oci", ldf, layout))
        let lines = exported.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3 && lines[0].hasPrefix("sha256:"), "\(exported.stdout)")
        #expect(lines.dropFirst().map { $0.split(separator: " ").prefix(3).joined(separator: " ") } == ["base 1.0 software", "site 1 config"])

        // The layers' annotations name them; the configuration layer says its deletion and opaque directory the OCI way.
        let manifest = try shell("cd '\(layout)' && jq -r '.manifests[0].digest' index.json | sed 's/sha256://'").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect("sha256:" + manifest == lines[0])
        let annotations = try shell("cd '\(layout)' && jq -r '.layers[] | .annotations[\"org.strata.layer.name\"] + \" \" + .annotations[\"org.strata.layer.version\"]' blobs/sha256/\(manifest)")
        #expect(annotations == "base 1.0\nsite 1\n")
        let siteBlob = try shell("cd '\(layout)' && jq -r '.layers[1].digest' blobs/sha256/\(manifest) | sed 's/sha256://'").trimmingCharacters(in: .whitespacesAndNewlines)
        let siteMembers = try shell("tar -tzf '\(layout)/blobs/sha256/\(siteBlob)' | sort")
        #expect(siteMembers.contains("etc/.wh.remove-me\n") && siteMembers.contains("data/old/.wh..wh..opq\n"), "\(siteMembers)")

        // umoci's unpacking is the mounted VLFS, entry for entry: modes, owners, symlinks, hard links, times.
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        try workspace.mount(ldf, at: mountpoint)
        defer { unmount(mountpoint) }
        let rootfs = try Self.unpack(layout, into: workspace.scratch.path + "/bundle")
        let store = try ObjectStore(root: workspace.scratch.path + "/compare", create: true)
        try Self.expectSameTree(mountpoint, rootfs, store: store)
        #expect(!FileManager.default.fileExists(atPath: rootfs + "/etc/remove-me"))
        #expect(try shell("ls '\(rootfs)/data/old'") == "c\n")
        #expect(try shell("stat -c '%a %u:%g' '\(rootfs)/srv/www/key' && readlink '\(rootfs)/usr/bin/t'") == "640 33:33\ntool\n")
        #expect(try shell("stat -c %i '\(rootfs)/usr/bin/tool' '\(rootfs)/usr/bin/tool-again' | uniq | wc -l") == "1\n", "the hard link holds")

        // skopeo reads the layout and converts it to a docker archive.
        let docker = workspace.scratch.path + "/app-docker.tar"
        try shell("skopeo copy --quiet oci:'\(layout)':latest docker-archive:'\(docker)':app:latest >/dev/null 2>&1")
        #expect(try shell("tar -xOf '\(docker)' manifest.json | jq -r '.[0].RepoTags[0], (.[0].Layers | length)'") == "docker.io/library/app:latest\n2\n")

        // And back: skopeo's OCI copy of the docker archive (no Strata annotations left) imports and mounts as the VLFS.
        let copied = workspace.scratch.path + "/from-docker"
        try shell("skopeo copy --quiet docker-archive:'\(docker)' oci:'\(copied)':app >/dev/null 2>&1")
        let fromDocker = expectSuccess(try workspace.strata("import", "oci", copied, "--repo", "main", "--ldf", workspace.scratch.path + "/docker.ldf")).stdout
        #expect(fromDocker.split(separator: "\n").dropFirst().dropLast().map { $0.split(separator: " ")[0] } == ["docker-layer1", "docker-layer2"], "\(fromDocker)")
        let again = workspace.scratch.path + "/mnt-docker"
        try makeDirectories(again)
        try workspace.mount(workspace.scratch.path + "/docker.ldf", at: again)
        defer { unmount(again) }
        try Self.expectSameTree(mountpoint, again, store: store)

        // The same LDF exports to the same digests, as a directory or as one archive.
        let twice = expectSuccess(try workspace.strata("export", "oci", ldf, workspace.scratch.path + "/layout-again")).stdout
        #expect(twice == exported.stdout)
        let archive = workspace.scratch.path + "/app.tar"
        #expect(expectSuccess(try workspace.strata("export", "oci", ldf, archive)).stdout == exported.stdout)
        try shell("skopeo inspect --raw oci-archive:'\(archive)' >/dev/null 2>&1")
        let rewritten = workspace.scratch.path + "/app-again.tar"
        expectSuccess(try workspace.strata("export", "oci", ldf, rewritten))
        #expect(try shell("cmp '\(archive)' '\(rewritten)' && echo same") == "same\n")

        // Read back from the archive into the repository it came from, the layers are its own units again.
        let imported = expectSuccess(try workspace.strata("import", "oci", archive, "--repo", "main")).stdout
        #expect(imported.split(separator: "\n").dropFirst().map { $0.split(separator: " ")[0] } == ["base", "site"], "\(imported)")
        #expect(imported.components(separatedBy: "(already in main)").count == 3, "\(imported)")
    }

    @Test func aVLFSExportsItsPrivateChangesAsTheLastLayerAndImportsBackToTheSameTree() throws {
        let workspace = try Workspace("oci-vlfs")
        let ldf = try Self.layers(in: workspace)
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        try workspace.mount(ldf, at: mountpoint)
        defer { unmount(mountpoint) }
        // An appliance's changes: a new file, a shared file written (copied up), one deleted, a
        // directory removed and made again (opaque), an owner changed.
        try shell("""
            set -e
            cd '\(mountpoint)'
            printf 'new\\n' > etc/added && printf 'port 9090\\n' > etc/app.conf && rm usr/bin/t
            rm -r srv/www && mkdir srv/www && printf 'fresh\\n' > srv/www/index.html && chown 7:7 usr/bin/tool
            """)
        let layout = workspace.scratch.path + "/layout"
        let exported = expectSuccess(try workspace.strata("export", "oci", "vlfs:app", layout)).stdout
        let kinds = exported.split(separator: "\n").dropFirst().map { $0.split(separator: " ")[2] }
        #expect(kinds == ["software", "config", "private"], "\(exported)")
        let rootfs = try Self.unpack(layout, into: workspace.scratch.path + "/bundle")
        let store = try ObjectStore(root: workspace.scratch.path + "/compare", create: true)
        try Self.expectSameTree(mountpoint, rootfs, store: store)
        #expect(!FileManager.default.fileExists(atPath: rootfs + "/usr/bin/t") && !FileManager.default.fileExists(atPath: rootfs + "/srv/www/key"))

        // A snapshot of the VLFS in the catalog exports as the VLFS does, digest for digest.
        expectSuccess(try workspace.strata("image", "snapshot", "app", "--image", "app"))
        #expect(expectSuccess(try workspace.strata("export", "oci", "app", workspace.scratch.path + "/layout-image")).stdout == exported)

        // Imported again into the same repository: the layers Strata named are the units it has, the
        // private changes a new configuration layer; mounted, the same tree.
        let imported = expectSuccess(try workspace.strata("import", "oci", layout, "--repo", "main", "--ldf", workspace.scratch.path + "/again.ldf"))
        #expect(imported.stdout.contains("base 1.0 sha256:") && imported.stdout.contains("(already in main)"), "\(imported.stdout)")
        #expect(try String(contentsOfFile: workspace.scratch.path + "/again.ldf", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: " ")[0] } == ["=main/app-private", "=main/site", "=main/base"])
        let second = workspace.scratch.path + "/mnt2"
        try makeDirectories(second)
        try workspace.mount(workspace.scratch.path + "/again.ldf", at: second)
        defer { unmount(second) }
        try Self.expectSameTree(mountpoint, second, store: store)
    }

    @Test func anImageUmociBuildsImportsAndMountsWithItsDeletions() throws {
        let workspace = try Workspace("oci-umoci")
        let layout = workspace.scratch.path + "/image"
        let bundle = workspace.scratch.path + "/bundle"
        try shell("""
            set -e
            umoci init --layout '\(layout)' && umoci new --image '\(layout):v1' && umoci unpack --image '\(layout):v1' '\(bundle)'
            cd '\(bundle)/rootfs' && mkdir -p etc opt/app/lib var/cache
            printf 'one\\n' > etc/motd && printf 'lib\\n' > opt/app/lib/a.so && printf 'x\\n' > var/cache/junk && ln -s ../opt/app etc/app
            chown -R 5:6 opt/app && chmod 0600 etc/motd
            umoci repack --refresh-bundle --image '\(layout):v1' '\(bundle)'
            rm var/cache/junk && rm -r opt/app/lib && mkdir opt/app/lib && printf 'new lib\\n' > opt/app/lib/b.so && printf 'two\\n' > etc/motd
            umoci repack --image '\(layout):v1' '\(bundle)'
            """ + " >/dev/null 2>&1")
        let ldf = workspace.scratch.path + "/umoci.ldf"
        let imported = expectSuccess(try workspace.strata("import", "oci", layout, "--repo", "main", "--ldf", ldf, "--tag", "v1"))
        let layers = imported.stdout.split(separator: "\n").dropFirst().filter { $0.hasPrefix("umoci-layer") }
        #expect(layers.count == 2, "\(imported.stdout)")
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        try workspace.mount(ldf, at: mountpoint)
        defer { unmount(mountpoint) }
        // The image as umoci unpacks it (its layers keep whole seconds, the working bundle had more).
        let rootfs = try Self.unpack(layout, tag: "v1", into: workspace.scratch.path + "/unpacked")
        let store = try ObjectStore(root: workspace.scratch.path + "/compare", create: true)
        try Self.expectSameTree(rootfs, mountpoint, store: store)
        #expect(!FileManager.default.fileExists(atPath: mountpoint + "/var/cache/junk") && !FileManager.default.fileExists(atPath: mountpoint + "/opt/app/lib/a.so"))
        #expect(try shell("cat '\(mountpoint)/etc/motd' '\(mountpoint)/opt/app/lib/b.so' && stat -c '%u:%g' '\(mountpoint)/opt/app'") == "two\nnew lib\n5:6\n")
    }

    @Test func anImageCheckedInExportsAsOneLayer() throws {
        let workspace = try Workspace("oci-image")
        _ = try Self.layers(in: workspace)
        let tree = workspace.scratch.path + "/base_1.0/filesystem"
        expectSuccess(try workspace.strata("image", "checkin", tree, "--name", "plain"))
        let exported = expectSuccess(try workspace.strata("export", "oci", "plain", workspace.scratch.path + "/layout")).stdout
        #expect(exported.split(separator: "\n").dropFirst().map { $0.split(separator: " ").prefix(3).joined(separator: " ") } == ["plain 1 image"])
        let rootfs = try Self.unpack(workspace.scratch.path + "/layout", into: workspace.scratch.path + "/bundle")
        let store = try ObjectStore(root: workspace.scratch.path + "/compare", create: true)
        try Self.expectSameTree(tree, rootfs, store: store)
    }

    /// Real Debian layers (setuid files, a hard link, thousands of symlinks) and the dpkg database the
    /// VLFS generates from them, through umoci.
    @Test func aVLFSOfDebianLayersExportsWithItsGeneratedDatabase() throws {
        let workspace = try Workspace("oci-debian")
        expectSuccess(try workspace.strata(["layer", "import", "main"] + (try downloadedPackages())))
        let ldf = workspace.scratch.path + "/deb.ldf"
        try AtomicFile.write(debianPackages.map { "main/\($0)\n" }.joined(), to: ldf)
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        let mounted = try workspace.strata("mount", ldf, mountpoint, "--no-configure")
        #expect(mounted.status == 0, "\(mounted.stderr)")
        defer { unmount(mountpoint) }
        try shell("rm '\(mountpoint)/usr/bin/sudo' && printf 'deb\\n' > '\(mountpoint)/etc/hostname'")
        let exported = expectSuccess(try workspace.strata("export", "oci", "vlfs:deb", workspace.scratch.path + "/layout")).stdout
        let kinds = exported.split(separator: "\n").dropFirst().map { String($0.split(separator: " ")[2]) }
        #expect(kinds.count == debianPackages.count + 2 && kinds.suffix(2) == ["generated", "private"], "\(exported)")
        let rootfs = try Self.unpack(workspace.scratch.path + "/layout", into: workspace.scratch.path + "/bundle")
        let store = try ObjectStore(root: workspace.scratch.path + "/compare", create: true)
        try Self.expectSameTree(mountpoint, rootfs, store: store)
        #expect(try shell("stat -c '%a' '\(rootfs)/usr/bin/passwd'") == "4755\n" && !FileManager.default.fileExists(atPath: rootfs + "/usr/bin/sudo"))
        #expect(try String(contentsOfFile: rootfs + "/var/lib/dpkg/status", encoding: .utf8).contains("Package: sudo"))
    }

    /// An OCI layout built by hand around layer tars a Python script writes, for members no tool would make.
    static func hostileLayout(_ directory: String, layers: [String], wrongDiffIDs: Bool = false) throws {
        try shell("""
            python3 - '\(directory)' <<'EOF'
            import hashlib, io, json, os, sys, tarfile
            out = sys.argv[1]
            os.makedirs(out + "/blobs/sha256")
            def blob(data):
                digest = hashlib.sha256(data).hexdigest()
                open(out + "/blobs/sha256/" + digest, "wb").write(data)
                return {"digest": "sha256:" + digest, "size": len(data)}
            def member(tar, name, kind=tarfile.REGTYPE, data=b"", link="", size=None):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, link
                info.size = len(data) if size is None else size
                if size is None:
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.fileobj.write(info.tobuf(tarfile.GNU_FORMAT))
                    tar.fileobj.write(data.ljust(512, b"\\0"))
            layers, diffs = [], []
            \(layers.enumerated().map { "buffer = io.BytesIO()\ntar = tarfile.open(fileobj=buffer, mode='w', format=tarfile.GNU_FORMAT)\n\($0.element)\ntar.close()\ndata = buffer.getvalue()\nd = blob(data)\nd['mediaType'] = 'application/vnd.oci.image.layer.v1.tar'\nlayers.append(d)\ndiffs.append(d['digest'])" }.joined(separator: "\n"))
            if \(wrongDiffIDs ? "True" : "False"):
                diffs = ["sha256:" + "0" * 64 for d in diffs]
            config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
            config["mediaType"] = "application/vnd.oci.image.config.v1+json"
            manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers}).encode())
            manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
            json.dump({"schemaVersion": 2, "manifests": [manifest]}, open(out + "/index.json", "w"))
            json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
            EOF
            """)
    }

    @Test func hostileImagesAreRefusedNamingTheArchiveAndTheMember() throws {
        let workspace = try Workspace("oci-hostile")
        let cases: [(layers: [String], message: String)] = [
            (["member(tar, '../escape', data=b'x')"], "'../escape' has a '..' component"),
            (["member(tar, '/etc/passwd', data=b'x')"], "absolute path '/etc/passwd'"),
            (["member(tar, 'link', tarfile.SYMTYPE, link='/etc')\nmember(tar, 'link/passwd', data=b'x')"], "'link/passwd' lies beneath 'link', which is a symlink"),
            (["member(tar, 'etc', tarfile.SYMTYPE, link='/tmp')", "member(tar, 'etc/.wh.passwd')"], "member 'etc/.wh.passwd' lies beneath 'etc', which a lower layer has as a symlink"),
            (["member(tar, 'big', data=b'x', size=1 << 42)"], "member 'big' claims 4398046511104 bytes"),
            (["member(tar, 'hard', tarfile.LNKTYPE, link='nothing')"], "hard link 'hard' points to 'nothing'"),
        ]
        for (number, test) in cases.enumerated() {
            let layout = workspace.scratch.path + "/bad\(number)"
            try Self.hostileLayout(layout, layers: test.layers)
            let before = try workspace.storeContents()
            let result = try workspace.strata("import", "oci", layout, "--repo", "main")
            #expect(result.status != 0 && result.stderr.contains(layout) && result.stderr.contains(test.message), "case \(number): \(result.stderr)")
            #expect(try workspace.storeContents() == before, "case \(number) stored objects")
        }

        // A layer that is not the one its configuration names.
        let mismatched = workspace.scratch.path + "/mismatched"
        try Self.hostileLayout(mismatched, layers: ["member(tar, 'fine', data=b'x')"], wrongDiffIDs: true)
        let refused = try workspace.strata("import", "oci", mismatched, "--repo", "main")
        #expect(refused.status != 0 && refused.stderr.contains("the image configuration's diff_id is sha256:0000"), "\(refused.stderr)")

        // A layout archive whose members leave the tree, or are links, is refused by name; a descriptor
        // claiming an absurd size is refused before anything is read.
        let archive = workspace.scratch.path + "/evil.tar"
        try shell("cd '\(workspace.scratch.path)' && mkdir -p x && printf '{}' > x/index.json && tar -cf '\(archive)' --transform 's,^x/index.json,../index.json,' -P x/index.json")
        let escaping = try workspace.strata("import", "oci", archive, "--repo", "main")
        #expect(escaping.status != 0 && escaping.stderr.contains("\(archive): path '../index.json' has a '..' component"), "\(escaping.stderr)")
        let linked = workspace.scratch.path + "/linked.tar"
        try shell("cd '\(workspace.scratch.path)' && mkdir -p y && ln -sf /etc/passwd y/oci-layout && tar -cf '\(linked)' -C y oci-layout")
        let linking = try workspace.strata("import", "oci", linked, "--repo", "main")
        #expect(linking.status != 0 && linking.stderr.contains("member 'oci-layout' is a symlink"), "\(linking.stderr)")
        let huge = workspace.scratch.path + "/bad0"
        try shell("cd '\(huge)' && jq -c '.manifests[0].size = 1099511627776' index.json > i && mv i index.json")
        let claiming = try workspace.strata("import", "oci", huge, "--repo", "main")
        #expect(claiming.status != 0 && claiming.stderr.contains("claims 1099511627776 bytes"), "\(claiming.stderr)")
    }
}
