import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A workspace with layers made from file lists and a VLFS mounted from an LDF, unmounted at the end.
final class MountedWorkspace: Sendable {
    let workspace: Workspace
    let ldf: String
    let mountpoint: String
    let name = "appliance"
    /// Options of every `strata mount` of this VLFS.
    let mountOptions: [String]

    init(_ label: String = #function, layers: [(name: String, version: String, files: [String: String])], ldf lines: [String],
         mountOptions: [String] = []) throws {
        workspace = try Workspace(label)
        self.mountOptions = mountOptions
        for layer in layers {
            let tree = "trees/\(layer.name)_\(layer.version)"
            for (path, contents) in layer.files { try workspace.scratch.write("\(tree)/\(path)", contents) }
            expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/" + tree, "--name", layer.name, "--version", layer.version))
        }
        ldf = workspace.scratch.path + "/appliance.ldf"
        mountpoint = workspace.scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        try setLDF(lines)
        try mount()
    }

    deinit {
        if isMounted { _ = try? workspace.strata("umount", mountpoint) }
        if isMounted { umount2(mountpoint, Int32(MNT_DETACH)) }
    }

    var isMounted: Bool {
        MountTable.isMounted(mountpoint, type: "fuse.strata")
    }

    func setLDF(_ lines: [String]) throws { try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: ldf) }

    func mount() throws { expectSuccess(try workspace.strata(["mount", ldf, mountpoint, "--name", name] + mountOptions)) }

    func unmount() throws { expectSuccess(try workspace.strata("umount", mountpoint)) }

    func path(_ relative: String) -> String { mountpoint + "/" + relative }

    func read(_ relative: String) throws -> String { try String(contentsOfFile: path(relative), encoding: .utf8) }

    func write(_ relative: String, _ text: String) throws {
        let fd = open(path(relative), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SystemError("open", path(relative)) }
        defer { close(fd) }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        fsync(fd)
    }

    func exists(_ relative: String) -> Bool { access(path(relative), F_OK) == 0 }

    func update() throws { expectSuccess(try workspace.strata("update", name)) }
}

@Suite(.serialized) struct MountTests {
    static let app = [("app", "1", ["usr/bin/app": "app one\n", "etc/app.conf": "conf one\n"]),
                      ("app", "2", ["usr/bin/app": "app two\n", "etc/app.conf": "conf two\n"]),
                      ("base", "1", ["etc/os-release": "strata\n", "usr/share/base/README": "base\n"])]

    @Test func mountComposesLayersAndPrivateDataSurvivesRemount() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
        #expect(try vlfs.read("etc/os-release") == "strata\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: vlfs.path("etc")).sorted() == ["app.conf", "os-release"])
        try vlfs.write("etc/app.conf", "edited\n")
        try vlfs.write("home-note", "private\n")
        try FileManager.default.removeItem(atPath: vlfs.path("usr/share/base/README"))
        try vlfs.unmount()
        #expect(!vlfs.isMounted)
        try vlfs.mount()
        #expect(try vlfs.read("etc/app.conf") == "edited\n")
        #expect(try vlfs.read("home-note") == "private\n")
        #expect(!vlfs.exists("usr/share/base/README"))
    }

    @Test func fsyncedDataSurvivesKillingTheDaemon() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        try vlfs.write("etc/app.conf", "synced\n")
        let pid = try #require(Int32(try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
        usleep(300_000)
        #expect(access(vlfs.path("never-looked-up"), F_OK) != 0 && errno == ENOTCONN, "the mount is dead once its daemon is")
        umount2(vlfs.mountpoint, Int32(MNT_DETACH))
        try vlfs.mount()
        #expect(try vlfs.read("etc/app.conf") == "synced\n")
    }

    @Test func deletedFileComesBackWhenItsLayerIsUpgradedLive() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        try FileManager.default.removeItem(atPath: vlfs.path("etc/app.conf"))
        #expect(!vlfs.exists("etc/app.conf"))
        try vlfs.setLDF(["main/app 2", "main/base 1"])
        try vlfs.update()
        #expect(try vlfs.read("etc/app.conf") == "conf two\n")
        #expect(try vlfs.read("usr/bin/app") == "app two\n")
    }

    @Test func fileOpenOnARemovedLayerKeepsReading() throws {
        let big = String(repeating: "0123456789abcdef", count: 1 << 16)
        let layers = Self.app + [("bulk", "1", ["var/lib/bulk/data": big])]
        let vlfs = try MountedWorkspace(layers: layers, ldf: ["main/app 1", "main/base 1", "main/bulk 1"])
        let handle = try #require(FileHandle(forReadingAtPath: vlfs.path("var/lib/bulk/data")))
        let head = try handle.read(upToCount: 1000) ?? Data()
        try vlfs.setLDF(["main/app 1", "main/base 1"])
        try vlfs.update()
        #expect(!vlfs.exists("var/lib/bulk/data"))
        let rest = try handle.readToEnd() ?? Data()
        try handle.close()
        #expect(String(decoding: head + rest, as: UTF8.self) == big)
    }

    @Test func revertThroughTheDaemonShowsTheOriginalAtOnce() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        try vlfs.write("usr/bin/app", "trojan\n")
        try FileManager.default.removeItem(atPath: vlfs.path("etc/os-release"))
        expectSuccess(try vlfs.workspace.strata("private", "revert", vlfs.name, "/usr/bin/app", "/etc/os-release"))
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
        #expect(try vlfs.read("etc/os-release") == "strata\n")
    }

    @Test func readersSeeNoErrorWhileTheStackIsUpdated() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        let failures = Mutex<[String]>([])
        let done = Atomic<Bool>(false)
        let paths = [vlfs.path("etc/os-release"), vlfs.path("usr/share/base/README"), vlfs.path("usr/bin/app"), vlfs.path("etc/app.conf")]
        let readers = (0..<8).map { index in
            Thread {
                while !done.load(ordering: .relaxed) {
                    let path = paths[index % paths.count]
                    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                          ["strata\n", "base\n", "app one\n", "app two\n", "conf one\n", "conf two\n"].contains(text) else {
                        failures.withLock { $0.append(path) }
                        continue
                    }
                    _ = try? FileManager.default.contentsOfDirectory(atPath: vlfs.path("etc"))
                }
            }
        }
        readers.forEach { $0.start() }
        for round in 0..<100 {
            try vlfs.setLDF(["main/app \(round % 2 == 0 ? 2 : 1)", "main/base 1"])
            try vlfs.update()
        }
        done.store(true, ordering: .relaxed)
        while readers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
    }

    @Test func mountsThatCannotBeMadeSayWhy() throws {
        let workspace = try Workspace()
        try workspace.scratch.write("t1/usr/bin/tool", "one")
        try workspace.scratch.write("t2/usr/bin/tool", "two")
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/t1", "--name", "tool-one", "--version", "1"))
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/t2", "--name", "tool-two", "--version", "1"))
        try makeDirectories(workspace.scratch.path + "/mnt")
        try workspace.scratch.write("missing.ldf", "main/tool-one 1\nmain/nosuch 2\n")
        let missing = try workspace.strata("mount", workspace.scratch.path + "/missing.ldf", workspace.scratch.path + "/mnt")
        #expect(missing.status != 0 && missing.stderr.contains("missing.ldf:2") && missing.stderr.contains("nosuch"), "\(missing.stderr)")
        try workspace.scratch.write("conflict.ldf", "main/tool-one 1\nmain/tool-two 1\n")
        let conflict = try workspace.strata("mount", workspace.scratch.path + "/conflict.ldf", workspace.scratch.path + "/mnt")
        #expect(conflict.status != 0 && conflict.stderr.contains("tool-one 1") && conflict.stderr.contains("tool-two 1") && conflict.stderr.contains("/usr/bin/tool"))
        let noDirectory = try workspace.strata("mount", workspace.scratch.path + "/missing.ldf", workspace.scratch.path + "/nowhere")
        #expect(noDirectory.status != 0 && noDirectory.stderr.contains("nowhere"))
    }
}

@Suite(.serialized) struct RootFilesystemTests {
    /// libc6 and its dependencies, a shell, coreutils and a small server, as the distribution ships them.
    static let packages = ["base-files", "libc6", "libgcc-s1", "gcc-12-base", "libtinfo6", "bash", "dash", "debianutils", "coreutils",
                           "libacl1", "libattr1", "libgmp10", "libselinux1", "libpcre2-8-0", "busybox"]

    @Test func chrootIntoAVLFSOfRealPackagesAndRunAServer() throws {
        let workspace = try Workspace()
        expectSuccess(try workspace.strata(["layer", "import", "main"] + (try downloadedPackages(Self.packages))))
        let ldf = workspace.scratch.path + "/rootfs.ldf"
        try AtomicFile.write(Self.packages.map { "main/\($0)" }.joined(separator: "\n") + "\n", to: ldf)
        let root = workspace.scratch.path + "/root"
        try makeDirectories(root)
        expectSuccess(try workspace.strata("mount", ldf, root, "--name", "rootfs"))
        defer { _ = try? workspace.strata("umount", root) }

        let shells = try shell("chroot '\(root)' /bin/bash -c 'echo \"bash $BASH_VERSION\"; /bin/ls /bin/bash; /bin/sh -c \"echo dash ok\"; id -u'")
        let lines = shells.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("bash 5.") == true && Array(lines.dropFirst()) == ["/bin/bash", "dash ok", "0"], "\(shells)")

        // A server inside the VLFS, serving a page written into the VLFS.
        try makeDirectories(root + "/srv/www")
        try AtomicFile.write("served from a VLFS\n", to: root + "/srv/www/index.html")
        let port = 18_000 + Int(getpid() % 1000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/chroot")
        server.arguments = [root, "/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:\(port)", "-h", "/srv/www"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            // SIGKILL: the child inherits the test runner's blocked signal mask, so SIGTERM would wait.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        var page = ""
        for _ in 0..<50 where page.isEmpty {
            page = (try? shell("python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:\(port)/\").read().decode(), end=\"\")'")) ?? ""
            if page.isEmpty { usleep(100_000) }
        }
        #expect(page == "served from a VLFS\n")
        // What the appliance wrote went to its private layer; the shared layers are untouched.
        #expect(FileManager.default.fileExists(atPath: workspace.home + "/vlfs/rootfs/private/srv/www/index.html"))
    }
}

extension MountTests {
    @Test func sharedAndPrivateMappingsWork() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        // A shared file, mapped read-only straight from its blob's pages.
        let shared = open(vlfs.path("etc/os-release"), O_RDONLY)
        #expect(shared >= 0)
        let view = mmap(nil, 7, PROT_READ, MAP_SHARED, shared, 0)
        #expect(view != MAP_FAILED)
        #expect(String(decoding: UnsafeRawBufferPointer(start: view, count: 7), as: UTF8.self) == "strata\n")
        munmap(view, 7)
        close(shared)
        // A shared writable mapping copies the file up and writes through to the private layer.
        let file = open(vlfs.path("etc/app.conf"), O_RDWR)
        #expect(file >= 0)
        let map = mmap(nil, 9, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0)
        #expect(map != MAP_FAILED)
        map!.storeBytes(of: UInt8(ascii: "C"), toByteOffset: 0, as: UInt8.self)
        #expect(msync(map, 9, MS_SYNC) == 0)
        munmap(map, 9)
        close(file)
        #expect(try vlfs.read("etc/app.conf") == "Conf one\n")
        #expect(try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/private/etc/app.conf", encoding: .utf8) == "Conf one\n")
    }

    @Test func permissionsAreEnforcedForOtherUsers() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        let user = "setpriv --reuid=1000 --regid=1000 --clear-groups"
        chmod(vlfs.workspace.scratch.path, 0o755)  // mkdtemp made it private to root
        #expect(try shell("\(user) cat '\(vlfs.path("etc/os-release"))'") == "strata\n", "allow_other: everyone may use the appliance's filesystem")
        #expect(throws: StoreError.self, "default_permissions: a root-owned 0644 file is not writable by others") {
            try shell("\(user) sh -c 'echo x >> \(vlfs.path("etc/os-release"))' 2>/dev/null")
        }
        #expect(try vlfs.read("etc/os-release") == "strata\n")
    }

    @Test func busyMountpointIsRefused() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        let again = try vlfs.workspace.strata("mount", vlfs.ldf, vlfs.mountpoint, "--name", "other")
        #expect(again.status != 0 && again.stderr.contains("\(vlfs.mountpoint) is busy"), "\(again.stderr)")
        #expect(try vlfs.read("usr/bin/app") == "app one\n")
    }

    /// As on any Linux filesystem: another user's write to a setuid/setgid file drops those bits.
    @Test func writesByOtherUsersDropSetuid() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        chmod(vlfs.workspace.scratch.path, 0o755)
        try vlfs.write("usr/bin/helper", "#!/bin/sh\n")
        #expect(chmod(vlfs.path("usr/bin/helper"), 0o6777) == 0)
        _ = try shell("setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo x >> \(vlfs.path("usr/bin/helper"))'")
        var st = stat()
        #expect(stat(vlfs.path("usr/bin/helper"), &st) == 0)
        #expect(st.st_mode & 0o7777 == 0o777, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        #expect(try vlfs.read("usr/bin/helper") == "#!/bin/sh\nx\n")
    }

    /// The daemon clears setuid and setgid when the kernel asks it to (FUSE_HANDLE_KILLPRIV_V2, the
    /// flag read from each raw request): the same commands on a VLFS and on kernel overlayfs leave
    /// every file with the same mode, whoever writes, truncates or chowns it.
    @Test func setuidClearingMatchesOverlayfs() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        let scratch = vlfs.workspace.scratch.path
        chmod(scratch, 0o755)
        let overlay = scratch + "/overlay"
        for directory in ["lower", "upper", "work", "overlay"] { try makeDirectories(scratch + "/" + directory) }
        try shell("mount -t overlay overlay -o 'lowerdir=\(scratch)/lower,upperdir=\(scratch)/upper,workdir=\(scratch)/work' '\(overlay)'")
        defer { unmount(overlay) }

        let user = "setpriv --reuid=1000 --regid=1000 --clear-groups"
        let member = "setpriv --reuid=1000 --regid=1000 --groups=0"
        // File, mode (set by root; owner root:root), command (F is the file).
        let cases: [(String, mode_t, String)] = [
            ("append", 0o6777, "\(user) sh -c 'echo x >> F'"),
            ("append-by-root", 0o6777, "sh -c 'echo x >> F'"),
            ("truncating-open", 0o6777, "\(user) sh -c ': > F'"),
            ("truncate", 0o6777, "\(user) truncate -s 1 F"),
            ("setgid-not-executable", 0o2666, "\(user) sh -c 'echo x >> F'"),
            ("setgid-not-executable-by-member", 0o2666, "\(member) sh -c 'echo x >> F'"),
            ("setgid-executable", 0o2777, "\(user) sh -c 'echo x >> F'"),
            ("chown-by-root", 0o6755, "chown 1000 F"),
            // The kernel sends these with no kill flag: the daemon decides from the caller's capabilities.
            ("fallocate", 0o6777, "\(user) fallocate -l 8192 F"),
            ("fallocate-by-root", 0o6777, "fallocate -l 8192 F"),
            ("copy-file-range", 0o6777, "\(user) /usr/bin/python3 -c \"import os, sys; os.copy_file_range(os.open(os.path.dirname(sys.argv[1]) + '/append', 0), os.open(sys.argv[1], 1), 4, 0, 0)\" F"),
        ]
        let expected = try Self.modes(after: cases, under: overlay)
        #expect(expected.first == "append 777", "overlayfs clears setuid on a write by another user: \(expected)")
        #expect(try Self.modes(after: cases, under: vlfs.mountpoint) == expected)
    }

    /// Makes each case's file (root's, with its mode), runs its command on it, and reports the mode left.
    private static func modes(after cases: [(file: String, mode: mode_t, command: String)], under root: String) throws -> [String] {
        try cases.map { name, mode, command in
            let file = root + "/" + name
            try shell("printf data > '\(file)' && chmod \(String(mode, radix: 8)) '\(file)'")
            try shell(command.replacingOccurrences(of: "F", with: "'\(file)'"))
            var st = stat()
            guard stat(file, &st) == 0 else { throw SystemError("stat", file) }
            return "\(name) \(String(st.st_mode & 0o7777, radix: 8))"
        }
    }

    /// A VLFS is an appliance's root filesystem: `su`, `sudo`, `passwd` and `ping` need their setuid
    /// bits to work in it, and its device nodes must open.
    @Test func setuidAndDevicesWork() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        chmod(vlfs.workspace.scratch.path, 0o755)
        let options = try mountOptions(vlfs.mountpoint)
        #expect(!options.contains("nosuid") && !options.contains("nodev"), "\(options)")

        let source = vlfs.workspace.scratch.path + "/euid.c"
        try AtomicFile.write("#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf(\"%d\\n\", (int)geteuid()); return 0; }\n", to: source)
        try shell("gcc -o '\(vlfs.path("usr/bin/euid"))' '\(source)' && chown 0:0 '\(vlfs.path("usr/bin/euid"))' && chmod 4755 '\(vlfs.path("usr/bin/euid"))'")
        #expect(try shell("setpriv --reuid=65534 --regid=65534 --clear-groups '\(vlfs.path("usr/bin/euid"))'") == "0\n")

        #expect(mknod(vlfs.path("null"), S_IFCHR | 0o666, 0x0103) == 0)
        let fd = open(vlfs.path("null"), O_WRONLY)
        #expect(fd >= 0, "\(String(cString: strerror(errno)))")
        #expect(write(fd, "x", 1) == 1)
        close(fd)
    }
}

/// The options the kernel reports for the filesystem mounted at `mountpoint`.
func mountOptions(_ mountpoint: String) throws -> [String] {
    try shell("awk '$2 == \"\(mountpoint)\" { print $4 }' /proc/self/mounts").split(whereSeparator: { $0 == "," || $0 == "\n" }).map(String.init)
}
