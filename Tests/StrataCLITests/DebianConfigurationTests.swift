import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real Debian packages configured inside a VLFS as Debian configures them: the generated dpkg
/// database, `dpkg --configure -a` in the sandbox, upgrades and removals with the maintainer scripts'
/// own arguments, and the administrator's conffiles kept.
@Suite(.serialized) struct DebianConfigurationTests {
    /// One Strata home for every test here and across runs (`/tmp/strata-test-debian-home-merged-usr`,
    /// named for the layout its layers were imported in, so a cache of another layout is never reused):
    /// `main`, a local repository of rebuilt `tar` packages, ahead of `debian`, the machine's apt
    /// indexes, whose layers are fetched and imported once.
    static let home = "/tmp/strata-test-debian-home-merged-usr"
    static let tarVersion = "1.34+dfsg-1.2+deb12u1"

    static func strata(_ arguments: String...) throws -> Execution { try strata(arguments) }

    static func strata(_ arguments: [String]) throws -> Execution {
        try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home])
    }

    /// The home, with `tar` rebuilt as `VERSION+strata1` and `+strata2`: each adds a conffile
    /// (`/etc/strata-tar.conf`, saying which build it is) and maintainer scripts that log their
    /// arguments to `/var/log/tar-calls` before doing what Debian's do.
    static func prepareHome() throws {
        if !FileManager.default.fileExists(atPath: home + "/repositories") {
            try makeDirectories(home)
            _ = try shell("rm -rf '\(home)/main' && true")
            expectSuccess(try strata("repo", "init", home + "/main"))
            expectSuccess(try strata("repo", "add", "main", home + "/main"))
            expectSuccess(try strata("repo", "add", "debian", "debian"))
        }
        guard try strata("layer", "show", "main", "tar=\(tarVersion)+strata2").status != 0 else { return }
        let original = try downloadedPackages(["tar"])[0]
        for build in 1...2 {
            let tree = home + "/tar-build-\(build)"
            let script = """
                rm -rf '\(tree)' && dpkg-deb -R '\(original)' '\(tree)' && cd '\(tree)' &&
                sed -i 's/^Version: .*/Version: \(tarVersion)+strata\(build)/' DEBIAN/control &&
                mkdir -p etc && echo 'build \(build)' > etc/strata-tar.conf && echo /etc/strata-tar.conf >> DEBIAN/conffiles &&
                for s in preinst postinst prerm postrm; do
                    [ -f DEBIAN/$s ] || printf '#!/bin/sh\\nexit 0\\n' > DEBIAN/$s
                    sed -i '1a echo "tar ${0##*.} $*" >> /var/log/tar-calls' DEBIAN/$s; chmod 755 DEBIAN/$s
                done && dpkg-deb -b '\(tree)' '\(home)/tar-\(build).deb' >/dev/null
                """
            _ = try shell(script)
            expectSuccess(try strata("layer", "import", "main", home + "/tar-\(build).deb"))
        }
    }

    @Test func dbusAndARebuiltTarConfigureUpgradeAndGo() throws {
        try Self.prepareHome()
        let scratch = try TemporaryDirectory("deb")
        let ldf = scratch.path + "/server.ldf", mountpoint = scratch.path + "/mnt", name = "deb-\(getpid())"
        try makeDirectories(mountpoint)
        try AtomicFile.write("debian/dbus\nmain/tar \(Self.tarVersion)+strata1\n", to: ldf)
        expectSuccess(try Self.strata("ldf", "resolve", ldf, "--write", "--fetch"))
        let layers = try String(contentsOfFile: ldf, encoding: .utf8).split(separator: "\n").filter { $0.contains("/") }.count
        let mounted = try Self.strata("mount", ldf, mountpoint, "--name", name)
        defer {
            _ = try? Self.strata("umount", mountpoint)
            _ = try? shell("rm -rf '\(Self.home)/vlfs/\(name)' '\(Self.home)/held/vlfs-\(name)-dpkg-database'")
        }
        expectSuccess(mounted)
        func inside(_ command: String) throws -> String { try shell("chroot '\(mountpoint)' /bin/sh -c '\(command)'") }
        func calls() throws -> [String] {
            // dpkg passes an empty old version to a first `configure`: lines may end in a blank.
            ((try? String(contentsOfFile: mountpoint + "/var/log/tar-calls", encoding: .utf8)) ?? "").split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }

        // dbus's postinst made its system user, and its setuid helper belongs to that user's group.
        #expect(try inside("getent passwd messagebus").hasPrefix("messagebus:"))
        #expect(try inside("stat -c \"%U %G %a\" /usr/lib/dbus-1.0/dbus-daemon-launch-helper") == "root messagebus 4754\n")
        // dpkg lists exactly the layers, every one configured; apt finds nothing broken.
        let listed = try inside("dpkg-query -W -f \"\\${db:Status-Abbrev}\\${Package}\\n\"").split(separator: "\n")
        #expect(listed.count == layers && listed.allSatisfy { $0.hasPrefix("ii ") }, "\(listed.filter { !$0.hasPrefix("ii ") })")
        _ = try inside("apt-get check -q")
        #expect(try calls() == ["tar preinst install", "tar postinst configure"])
        // tar's postinst set its alternative; libc-bin's trigger ran ldconfig; all in the private layer.
        #expect(try inside("readlink /etc/alternatives/rmt") == "/usr/sbin/rmt-tar\n")
        #expect(FileManager.default.fileExists(atPath: Self.home + "/vlfs/\(name)/private/etc/ld.so.cache"))
        // What dpkg wrote went back into the state: the database shown is the generated one.
        #expect(try shell("getfattr --only-values -n user.strata.layer '\(mountpoint)/var/lib/dpkg/status'") == "strata-dpkg-database 1")

        // The administrator changes the conffile; then tar is upgraded live.
        try AtomicFile.write("the administrator's\n", to: mountpoint + "/etc/strata-tar.conf")
        expectSuccess(try Self.strata("ldf", "upgrade", ldf, "main/tar"))
        expectSuccess(try Self.strata("update", name))
        #expect(Array(try calls().dropFirst(2)) == ["tar prerm upgrade \(Self.tarVersion)+strata2", "tar postrm upgrade \(Self.tarVersion)+strata2",
                                                   "tar preinst upgrade \(Self.tarVersion)+strata1", "tar postinst configure \(Self.tarVersion)+strata1"])
        #expect(try String(contentsOfFile: mountpoint + "/etc/strata-tar.conf", encoding: .utf8) == "the administrator's\n")
        #expect(try inside("dpkg-query -W -f \"\\${Version} \\${db:Status-Abbrev}\" tar") == "\(Self.tarVersion)+strata2 ii ")

        // dbus removed (with what only it needed): its prerm and postrm ran with `remove`, and dpkg no
        // longer lists it.
        expectSuccess(try Self.strata("ldf", "remove", ldf, "debian/dbus"))
        expectSuccess(try Self.strata("update", name))
        let log = try String(contentsOfFile: Self.home + "/vlfs/\(name)/configure.log", encoding: .utf8)
        #expect(log.contains("/run/strata/dbus.prerm remove") && log.contains("/run/strata/dbus.postrm remove"))
        #expect(try inside("dpkg-query -W dbus 2>&1 || true").contains("no packages found"))
        #expect(try inside("dpkg-query -W -f \"\\${db:Status-Abbrev}\\n\"").split(separator: "\n").allSatisfy { $0.hasPrefix("ii") })
    }

    /// The paper's story with real packages: a template configured once through its mount and promoted;
    /// ten appliances provisioned from it, which run none of the scripts again; then the template's `tar`
    /// upgraded, which reaches a mounted appliance live and an unmounted one at its next mount, each
    /// running tar's upgrade scripts from the configured version.
    @Test func aTemplateConfiguresOnceAndItsAppliancesFollowItsTarUpgrade() throws {
        try Self.prepareHome()
        let scratch = try TemporaryDirectory("tpl")
        let template = "srv\(getpid())", names = (1...10).map { "a\(getpid())-\($0)" }
        let source = scratch.path + "/source.ldf"
        try AtomicFile.write("debian/dbus\nmain/tar \(Self.tarVersion)+strata1\n", to: source)
        expectSuccess(try Self.strata("ldf", "resolve", source, "--write", "--fetch"))
        expectSuccess(try Self.strata("template", "create", template, source))
        var mounted: [String] = []
        defer {
            for mountpoint in mounted.reversed() { _ = try? Self.strata("umount", mountpoint) }
            for name in [template] + names { _ = try? shell("rm -rf '\(Self.home)/vlfs/\(name)' '\(Self.home)/held/vlfs-\(name)-dpkg-database'") }
        }
        func mountpoint(_ name: String) throws -> String {
            let path = scratch.path + "/" + name
            try makeDirectories(path)
            mounted.append(path)
            return path
        }
        func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

        // The administrator configures the template through its mount: a file of its own, and the
        // distribution's /etc/motd deleted.
        let templateMount = try mountpoint(template)
        expectSuccess(try Self.strata("template", "mount", template, templateMount))
        try AtomicFile.write("configured once\n", to: templateMount + "/etc/strata-fleet.conf")
        #expect(unlink(templateMount + "/etc/motd") == 0)
        expectSuccess(try Self.strata("template", "promote", template, "--repo", "main"))
        expectSuccess(try Self.strata("umount", templateMount))

        expectSuccess(try Self.strata(["provision"] + names + ["--template", template]))
        let live = try mountpoint(names[0])
        expectSuccess(try Self.strata("mount", Self.home + "/appliances/\(names[0]).ldf", live, "--name", names[0]))
        // The configuration is the template's, and nothing ran to make it again.
        #expect(read(live + "/etc/strata-fleet.conf") == "configured once\n")
        #expect(!FileManager.default.fileExists(atPath: live + "/etc/motd"))
        #expect(try shell("chroot '\(live)' getent passwd messagebus").hasPrefix("messagebus:"))
        #expect(read(Self.home + "/vlfs/\(names[0])/configure.log") == nil, "no script ran in a provisioned appliance")
        #expect(try shell("chroot '\(live)' dpkg-query -W -f '${db:Status-Abbrev}\\n'").split(separator: "\n").allSatisfy { $0.hasPrefix("ii") })

        // The template's tar is upgraded: the mounted appliance follows live (the daemon watches the
        // template's LDF), running tar's upgrade scripts.
        expectSuccess(try Self.strata("ldf", "upgrade", Self.home + "/templates/\(template).ldf", "main/tar"))
        // (The first two calls are the template's, made when it was configured, carried by its configuration layer.)
        let upgraded = ["tar preinst install", "tar postinst configure", "tar prerm upgrade \(Self.tarVersion)+strata2", "tar postrm upgrade \(Self.tarVersion)+strata2",
                        "tar preinst upgrade \(Self.tarVersion)+strata1", "tar postinst configure \(Self.tarVersion)+strata1"]
        func tarCalls(_ root: String) -> [String] {
            (read(root + "/var/log/tar-calls") ?? "").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        for _ in 0..<600 where tarCalls(live).suffix(1) != upgraded.suffix(1) { usleep(100_000) }
        #expect(tarCalls(live) == upgraded)
        #expect(try shell("chroot '\(live)' dpkg-query -W -f '${Version}' tar") == "\(Self.tarVersion)+strata2")

        // An appliance that was not mounted composes the new tar at its next mount, upgraded from the
        // template's configured version.
        let later = try mountpoint(names[9])
        expectSuccess(try Self.strata("mount", Self.home + "/appliances/\(names[9]).ldf", later, "--name", names[9]))
        #expect(tarCalls(later) == upgraded)
        #expect(read(later + "/etc/strata-fleet.conf") == "configured once\n")
        let status = try Self.strata("fleet", "status").stdout
        #expect(status.contains(names[0]) && !status.split(separator: "\n").contains { $0.contains(names[0]) && $0.contains("pending") }, "\(status)")
    }
}
