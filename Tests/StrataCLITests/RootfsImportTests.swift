import Foundation
import StrataStore
import StrataTestSupport
import Testing

/// `strata import rootfs` on real Debian 12 systems made by `mmdebstrap --variant=minbase bookworm` from
/// the machine's apt sources, with nginx-light, procps and less installed by apt, then edited as an
/// administrator would: decomposed into package layers and a configuration layer, composed again and
/// compared with the original.
@Suite(.serialized) struct RootfsImportTests {
    /// The system, built once and kept across runs (about 2 minutes here).
    static let tarball = "/tmp/strata-test-rootfs/bookworm-minbase-nginx.tar"
    /// The homes' Debian package layers, imported once and kept across runs; named for the layout the
    /// layers were imported in (merged /usr), so that a cache of another layout is never reused.
    static let debianCache = "/tmp/strata-test-rootfs-debian-merged-usr"

    static func machineTarball() throws -> String {
        if FileManager.default.fileExists(atPath: tarball) { return tarball }
        try makeDirectories((tarball as NSString).deletingLastPathComponent)
        let sources = FileManager.default.fileExists(atPath: "/etc/apt/sources.list.d/debian.sources") ? "/etc/apt/sources.list.d/debian.sources" : "/etc/apt/sources.list"
        _ = try shell("mmdebstrap --quiet --format=tar --variant=minbase --include=nginx-light,procps,less bookworm '\(tarball).part' '\(sources)' && mv '\(tarball).part' '\(tarball)'")
        return tarball
    }

    /// A workspace whose home names `debian`, with the Debian layers cached across runs.
    /// `label` is short: the VLFS's control socket path must fit a Unix socket address.
    static func workspace(_ label: String) throws -> Workspace {
        let workspace = try Workspace(label)
        try makeDirectories(debianCache)
        _ = try shell("ln -s '\(debianCache)' '\(workspace.home)/debian'")
        expectSuccess(try workspace.strata("repo", "add", "debian", "debian"))
        return workspace
    }

    /// The machine unpacked into `directory`, with owners, modes and attributes as they were.
    static func unpack(into directory: String) throws {
        try makeDirectories(directory)
        _ = try shell("tar -C '\(directory)' --numeric-owner --xattrs --xattrs-include='*' -xpf '\(try machineTarball())'")
    }

    /// The `different` row of `--verify`'s table, and the others.
    static func verification(_ output: String) -> [String: Int] {
        var rows: [String: Int] = [:]
        for label in ["paths compared", "identical", "excluded", "different"] {
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("  " + label + " ") }),
               let value = line.split(separator: " ").last.flatMap({ Int($0) }) { rows[label] = value }
        }
        return rows
    }

    @Test func anEditedDebianMachineDecomposesIntoLayersThatComposeItAgain() throws {
        let workspace = try Self.workspace("rootfs-web")
        let machine = workspace.scratch.path + "/web1"
        try Self.unpack(into: machine)
        // What an administrator does: a changed conffile, a file no package owns, a package file
        // deleted, a mode and an owner changed; and a log, which the import leaves out.
        _ = try shell("""
            cd '\(machine)' &&
            sed -i 's/listen 80 default_server;/listen 8080 default_server;/' etc/nginx/sites-available/default &&
            printf 'maintenance notes\\n' > root/notes.txt &&
            rm usr/share/doc/less/copyright && chmod 0700 usr/bin/less && chown 33:33 etc/nginx/mime.types &&
            echo noise > var/log/web.log
            """)
        let ldf = workspace.scratch.path + "/web1.ldf"
        let imported = expectSuccess(try workspace.strata("import", "rootfs", machine, "--repo", "main", "--ldf", ldf, "--verify"))
        let first = imported.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first.hasPrefix("web1-config 1 sha256:"), "first line names the configuration layer: \(first)")
        let table = Self.verification(imported.stdout)
        #expect(table["different"] == 0 && (table["identical"] ?? 0) > 8000 && (table["excluded"] ?? 0) > 0, "\(imported.stdout)")

        // The configuration layer holds the edits, and nothing a package provides unchanged.
        let config = workspace.scratch.path + "/config"
        expectSuccess(try workspace.strata("layer", "checkout", "main", "web1-config", config))
        #expect(try String(contentsOfFile: config + "/etc/nginx/sites-available/default", encoding: .utf8).contains("listen 8080 default_server;"))
        #expect(try String(contentsOfFile: config + "/root/notes.txt", encoding: .utf8) == "maintenance notes\n")
        #expect(try shell("stat -c '%F %t:%T' '\(config)/usr/share/doc/less/copyright'") == "character special file 0:0\n")
        #expect(try shell("stat -c '%a' '\(config)/usr/bin/less'") == "700\n")
        #expect(try shell("stat -c '%u:%g' '\(config)/etc/nginx/mime.types'") == "33:33\n")
        #expect(!FileManager.default.fileExists(atPath: config + "/var/log/web.log"))
        #expect(!FileManager.default.fileExists(atPath: config + "/usr/bin/bash"))
        #expect(!FileManager.default.fileExists(atPath: config + "/var/lib/dpkg/status"))

        // The explicit set is smaller than apt's manual set, and resolving the LDF gives back exactly
        // the packages the machine has, at their versions.
        let text = try String(contentsOfFile: ldf, encoding: .utf8)
        let blocks = text.components(separatedBy: "\n\n")
        let explicit = blocks[0].split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("=") }
        let manual = try shell("chroot '\(machine)' apt-mark showmanual").split(separator: "\n")
        #expect(!explicit.isEmpty && explicit.count < manual.count, "explicit \(explicit), apt's manual \(manual)")
        #expect(explicit.contains { $0.hasPrefix("main/nginx-light ") })
        let installed = Set(try shell("chroot '\(machine)' dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n' | awk '$1 == \"ii\" { print \"main/\" $2 \" \" $3 }'")
            .split(separator: "\n").map(String.init))
        let resolved = expectSuccess(try workspace.strata("ldf", "resolve", ldf)).stdout
        let layers = Set(resolved.split(separator: "\n").map { String($0.drop { $0 == "=" }) }.filter { !$0.hasPrefix("#") && !$0.contains("web1-config") })
        #expect(layers == installed, "only resolved: \(layers.subtracting(installed)), only installed: \(installed.subtracting(layers))")

        // Mounted, the VLFS runs the machine's programs through merged /usr (the loader at /lib64), runs no
        // maintainer script (the configuration layer names every package layer as configured), and its
        // /etc is the machine's, less what the import leaves out.
        let mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        try workspace.mount(ldf, at: mountpoint)
        defer { unmount(mountpoint) }
        #expect(try shell("chroot '\(mountpoint)' /bin/less --version").hasPrefix("less "))
        #expect(try shell("readlink '\(mountpoint)/lib64'") == "usr/lib64\n")
        #expect(try shell("diff -r --no-dereference -x machine-id -x '*-' -x .pwd.lock '\(machine)/etc' '\(mountpoint)/etc' && echo same") == "same\n")
        #expect(try shell("stat -c '%a %u' '\(mountpoint)/usr/bin/less' '\(mountpoint)/etc/nginx/mime.types'") == "700 0\n644 33\n")
        #expect(!FileManager.default.fileExists(atPath: mountpoint + "/usr/share/doc/less/copyright"))
        let configured = expectSuccess(try workspace.strata("configure", "web1", "--json")).stdout
        #expect(!configured.contains("unpacked") && !configured.contains("half-"), "\(configured)")
        unmount(mountpoint)

        // A second machine of the release adds only its own configuration layer to the repository.
        let before = expectSuccess(try workspace.strata("layer", "list", "main")).stdout.split(separator: "\n")
        let second = workspace.scratch.path + "/web2"
        try Self.unpack(into: second)
        _ = try shell("cd '\(second)' && echo web2 > etc/hostname && mkdir -p srv/www && echo 'web2 site' > srv/www/index.html")
        let secondImport = expectSuccess(try workspace.strata("import", "rootfs", second, "--repo", "main", "--ldf", workspace.scratch.path + "/web2.ldf", "--verify"))
        #expect(Self.verification(secondImport.stdout)["different"] == 0, "\(secondImport.stdout)")
        let after = expectSuccess(try workspace.strata("layer", "list", "main")).stdout.split(separator: "\n")
        #expect(Set(after).subtracting(before).map { $0.split(whereSeparator: \.isWhitespace)[0] } == ["web2-config"], "\(after)")
        expectSuccess(try workspace.strata("fsck", "main"))
    }

    /// A version the archive no longer has is rebuilt from the machine's files and control data.
    @Test func aVersionTheArchiveNoLongerHasIsRebuiltFromTheMachine() throws {
        let workspace = try Self.workspace("rootfs-old")
        let machine = workspace.scratch.path + "/old"
        try Self.unpack(into: machine)
        let version = try shell("chroot '\(machine)' dpkg-query -W -f '${Version}' less")
        _ = try shell("sed -i '/^Package: less$/,/^$/ s/^Version: .*/Version: \(version)+gone1/' '\(machine)/var/lib/dpkg/status'")
        let imported = expectSuccess(try workspace.strata("import", "rootfs", machine, "--repo", "main", "--ldf", workspace.scratch.path + "/old.ldf", "--verify"))
        #expect(imported.stdout.contains("rebuilt: less"), "\(imported.stdout)")
        #expect(Self.verification(imported.stdout)["different"] == 0, "\(imported.stdout)")
        let shown = expectSuccess(try workspace.strata("layer", "show", "main", "less")).stdout
        #expect(shown.contains("Version: \(version)+gone1") && shown.contains("Rebuilt-From:"), "\(shown)")
        let files = workspace.scratch.path + "/less"
        expectSuccess(try workspace.strata("layer", "checkout", "main", "less", files))
        #expect(FileManager.default.fileExists(atPath: files + "/usr/bin/less") && !FileManager.default.fileExists(atPath: files + "/bin"))
    }

    /// A tarball of a machine imports as the machine would (read by libarchive, its paths checked).
    @Test func aTarballOfTheMachineImportsAndVerifies() throws {
        let workspace = try Self.workspace("rootfs-tar")
        let imported = expectSuccess(try workspace.strata("import", "rootfs", try Self.machineTarball(), "--repo", "main",
                                                          "--ldf", workspace.scratch.path + "/tar.ldf", "--verify"))
        let table = Self.verification(imported.stdout)
        #expect(table["different"] == 0 && (table["identical"] ?? 0) > 8000, "\(imported.stdout)")
        #expect(imported.stdout.contains(", 0 rebuilt from the machine's files"), "\(imported.stdout)")
    }

    /// A source is read as it is, never through its symlinks into the importing machine.
    @Test func aSourceCannotLeadTheImportOutsideItself() throws {
        let workspace = try Workspace()
        let fake = workspace.scratch.path + "/fake"
        try makeDirectories(fake + "/etc")
        // The importing machine is Debian; a link to its os-release must not make the source one.
        _ = try shell("ln -s /usr/lib/os-release '\(fake)/etc/os-release'")
        let refused = try workspace.strata("import", "rootfs", fake, "--repo", "main", "--ldf", workspace.scratch.path + "/fake.ldf")
        #expect(refused.status != 0 && refused.stderr.contains("no /etc/os-release"), "\(refused.stderr)")
        _ = try shell("rm '\(fake)/etc/os-release' && printf 'ID=fedora\\n' > '\(fake)/etc/os-release'")
        let other = try workspace.strata("import", "rootfs", fake, "--repo", "main", "--ldf", workspace.scratch.path + "/fake.ldf")
        #expect(other.status != 0 && other.stderr.contains("ID=fedora"), "\(other.stderr)")
        #expect(!FileManager.default.fileExists(atPath: workspace.scratch.path + "/fake.ldf"))
    }
}
