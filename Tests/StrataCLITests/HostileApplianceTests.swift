import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The appliance above a VLFS may be compromised, and the daemon under it runs as root: nothing done
/// through the mount may make the daemon act outside the private layer, and every path and mode the
/// kernel accepts must work as it does on a local filesystem.
@Suite(.serialized) struct HostileApplianceTests {
    /// Runs a Python script (POSIX calls with exact arguments, relative names from a deep working
    /// directory) and returns its output; it prints one line per check.
    static func python(_ script: String, _ arguments: String..., in workspace: Workspace) throws -> String {
        let file = workspace.scratch.path + "/check.py"
        try AtomicFile.write(script, to: file)
        return try shell("python3 '\(file)' " + arguments.map { "'\($0)'" }.joined(separator: " ") + " 2>&1")
    }

    /// While a process inside the VLFS swaps a directory for a symlink that, followed from the private
    /// layer, would lead to a decoy tree outside it, the host copies files up, changes their modes,
    /// sizes and attributes, reverts, snapshots and resets. The decoy must not change.
    @Test func symlinkSwapsInsideCannotRedirectTheDaemon() throws {
        let count = 16
        var files: [String: String] = [:]
        for index in 0..<count { files["d/f\(index)"] = String(repeating: "shared \(index)\n", count: 40_000) }
        let vlfs = try MountedWorkspace(layers: [("app", "1", files)], ldf: ["main/app 1"])
        // From the private layer's root (home/vlfs/NAME/private) this leads to scratch/decoy; from the
        // mountpoint (scratch/mnt) it leads to /decoy, which does not exist: only a daemon that follows
        // the link inside its private layer reaches the decoy.
        let target = "../../../../decoy"
        let decoy = vlfs.workspace.scratch.path + "/decoy"
        for index in 0..<count { try vlfs.workspace.scratch.write("decoy/f\(index)", "decoy \(index)\n", mode: 0o644) }
        try #require(access("/decoy", F_OK) != 0)
        let before = try listing(of: decoy, store: try ObjectStore(root: vlfs.workspace.scratch.path + "/check-store", create: true)).digest

        let deadline = Date().addingTimeInterval(20)
        let swaps = Atomic<Int>(0)
        let attacker = Thread {
            let directory = vlfs.path("d"), moved = vlfs.path("d.real")
            while Date() < deadline {
                guard rename(directory, moved) == 0 else { continue }
                if symlink(target, directory) == 0 {
                    sched_yield()
                    unlink(directory)
                }
                rename(moved, directory)
                swaps.add(1, ordering: .relaxed)
            }
        }
        attacker.start()
        let workers = (0..<3).map { worker in
            Thread {
                var round = 0
                while Date() < deadline {
                    round += 1
                    let file = vlfs.path("d/f\((round * 3 + worker) % count)")
                    switch (round + worker) % 5 {
                    case 0:
                        let fd = open(file, O_WRONLY | O_APPEND)
                        if fd >= 0 { _ = write(fd, "x", 1); close(fd) }
                    case 1: chmod(file, mode_t(0o600 | (round % 2) * 0o044))
                    case 2: truncate(file, off_t(round % 100))
                    case 3: _ = try? shell("setfattr -n user.round -v \(round) '\(file)' 2>/dev/null")
                    default:
                        let fd = open(file, O_WRONLY | O_TRUNC)
                        if fd >= 0 { close(fd) }
                    }
                }
            }
        }
        workers.forEach { $0.start() }
        var commands = 0
        while Date() < deadline {
            commands += 1
            switch commands % 4 {
            case 0: _ = try vlfs.workspace.strata("private", "reset", vlfs.name)
            case 1: _ = try vlfs.workspace.strata("image", "snapshot", vlfs.name, "--image", "race")
            default: _ = try vlfs.workspace.strata("private", "revert", vlfs.name, "d", "d.real")
            }
        }
        while !attacker.isFinished || workers.contains(where: { !$0.isFinished }) { usleep(10_000) }

        #expect(swaps.load(ordering: .relaxed) > 100, "the attacker kept swapping")
        #expect(try listing(of: decoy, store: try ObjectStore(root: vlfs.workspace.scratch.path + "/check-store", create: true)).digest == before,
                "the decoy outside the private layer is unchanged")
        #expect(access("/decoy", F_OK) != 0)
        #expect(vlfs.exists("d/f0"), "the daemon still serves")
    }

    /// A path given to `private revert` that climbs out of the VLFS is refused and nothing outside the
    /// private layer goes, with the daemon running or not.
    @Test func revertRefusesPathsThatLeaveTheVLFS() throws {
        let vlfs = try MountedWorkspace(layers: [("app", "1", ["etc/app.conf": "conf\n"])], ldf: ["main/app 1"])
        try vlfs.write("etc/app.conf", "private\n")
        let state = vlfs.workspace.home + "/vlfs/" + vlfs.name
        for mounted in [true, false] {
            if !mounted { try vlfs.unmount() }
            for path in ["../..", "etc/../../ldf", "/../whiteouts"] {
                let result = try vlfs.workspace.strata("private", "revert", vlfs.name, path)
                #expect(result.status != 0 && result.stderr.contains("leaves"), "\(path): \(result.stderr)")
            }
            #expect(FileManager.default.fileExists(atPath: state + "/ldf"), "the state outside the private layer is intact")
            #expect(FileManager.default.fileExists(atPath: vlfs.workspace.home + "/repositories"))
        }
        try vlfs.mount()
        #expect(try vlfs.read("etc/app.conf") == "private\n")
    }

    /// The kernel resolves long paths a component at a time, so an appliance can make paths of any
    /// length; every operation must work on them as on a local filesystem (here at ~4,000 bytes below
    /// the mount's root and again at ~6,000).
    @Test func everyOperationWorksOnPathsLongerThanPathMax() throws {
        let vlfs = try MountedWorkspace(layers: [("app", "1", ["etc/app.conf": "conf\n"])], ldf: ["main/app 1"])
        let output = try Self.python("""
            import os, stat, sys
            os.umask(0)
            os.chdir(sys.argv[1])
            depth = 0
            def check(name, ok):
                print(("ok " if ok else "FAIL ") + name + " at " + str(depth))
            for target in (4000, 6000):
                while depth < target:
                    component = "d" * 200
                    os.mkdir(component, 0o755)
                    os.chdir(component)
                    depth += len(component) + 1
                fd = os.open("file", os.O_CREAT | os.O_WRONLY, 0o620)
                os.write(fd, b"hello"); os.close(fd)
                check("create mode", stat.S_IMODE(os.stat("file").st_mode) == 0o620)
                os.mkdir("dir", 0o775)
                check("mkdir mode", stat.S_IMODE(os.stat("dir").st_mode) == 0o775)
                os.chmod("file", 0o640); check("chmod", stat.S_IMODE(os.stat("file").st_mode) == 0o640)
                os.chown("file", 1, 2); check("chown", (os.stat("file").st_uid, os.stat("file").st_gid) == (1, 2))
                os.truncate("file", 2); check("truncate", os.stat("file").st_size == 2)
                fd = os.open("file", os.O_WRONLY); os.ftruncate(fd, 1); os.close(fd); check("ftruncate", os.stat("file").st_size == 1)
                os.link("file", "hard"); check("link", os.stat("file").st_nlink == 2)
                os.symlink("file", "soft"); check("symlink", os.readlink("soft") == "file")
                os.mkfifo("fifo", 0o600); check("mkfifo", stat.S_ISFIFO(os.lstat("fifo").st_mode))
                os.mknod("null", 0o600 | stat.S_IFCHR, os.makedev(1, 3)); check("mknod", stat.S_ISCHR(os.lstat("null").st_mode))
                os.setxattr("file", "user.k", b"v"); check("xattr", os.getxattr("file", "user.k") == b"v")
                os.utime("file", (1, 2)); check("utimes", os.stat("file").st_mtime == 2)
                os.rename("file", "dir/moved"); check("rename", os.path.exists("dir/moved") and not os.path.exists("file"))
                check("listdir", sorted(os.listdir(".")) == ["dir", "fifo", "hard", "null", "soft"])
                for name in ("hard", "soft", "fifo", "null", "dir/moved"): os.unlink(name)
                os.rmdir("dir"); check("unlink and rmdir", os.listdir(".") == [])
            """, vlfs.mountpoint, in: vlfs.workspace)
        let lines = output.split(separator: "\n")
        #expect(lines.count == 30, "\(output)")
        #expect(lines.allSatisfy { $0.hasPrefix("ok ") }, "\(output)")
    }

    /// Modes are the caller's, as the kernel computed them from its umask; the daemon's own umask
    /// must not take bits away again.
    @Test func creationKeepsTheCallersMode() throws {
        let vlfs = try MountedWorkspace(layers: [("app", "1", ["etc/app.conf": "conf\n"])], ldf: ["main/app 1"])
        let output = try Self.python("""
            import os, stat, sys
            os.chdir(sys.argv[1])
            for mask in (0, 0o022, 0o077):
                os.umask(mask)
                fd = os.open("f%o" % mask, os.O_CREAT | os.O_WRONLY, 0o666); os.close(fd)
                os.mkdir("d%o" % mask, 0o777)
                os.mknod("p%o" % mask, 0o666 | stat.S_IFIFO)
                print("%o %o %o %o" % (mask, stat.S_IMODE(os.stat("f%o" % mask).st_mode), stat.S_IMODE(os.stat("d%o" % mask).st_mode),
                                      stat.S_IMODE(os.lstat("p%o" % mask).st_mode)))
            os.umask(0)
            fd = os.open("etc/new", os.O_CREAT | os.O_WRONLY, 0o620); os.close(fd)
            print("shared-dir %o" % stat.S_IMODE(os.stat("etc/new").st_mode))
            fd = os.open("setuid", os.O_CREAT | os.O_WRONLY, 0o6755); os.close(fd)
            os.mknod("setgid-fifo", 0o2644 | stat.S_IFIFO)
            print("setuid %o %o" % (stat.S_IMODE(os.stat("setuid").st_mode), stat.S_IMODE(os.lstat("setgid-fifo").st_mode)))
            os.chmod(".", 0o751); os.chown(".", 7, 8); os.utime(".", (5, 6))
            st = os.stat(".")
            print("root %o %d %d %d" % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime))
            """, vlfs.mountpoint, in: vlfs.workspace)
        #expect(output == "0 666 777 666\n22 644 755 644\n77 600 700 600\nshared-dir 620\nsetuid 6755 2644\nroot 751 7 8 6\n")
    }
}

@Suite(.serialized) struct DirectoryListingTests {
    static func names(in directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        return names
    }

    /// Two readers going through one large directory at once, while names come and go beside the ones
    /// they count, each see every unchanged entry exactly once.
    @Test func concurrentReadersSeeEveryEntryOnce() throws {
        var files: [String: String] = [:]
        for index in 0..<1500 { files["big/shared-\(index)"] = "" }
        let vlfs = try MountedWorkspace(layers: [("app", "1", files)], ldf: ["main/app 1"])
        for index in 0..<1500 { try vlfs.write("big/private-\(index)", "") }
        let stable = Set((0..<1500).flatMap { ["shared-\($0)", "private-\($0)"] })
        let done = Atomic<Bool>(false)
        let churn = Thread {
            var round = 0
            while !done.load(ordering: .relaxed) {
                round += 1
                close(open(vlfs.path("big/churn-\(round % 50)"), O_CREAT | O_WRONLY, 0o644))
                unlink(vlfs.path("big/churn-\((round + 25) % 50)"))
            }
        }
        churn.start()
        let problems = Mutex<[String]>([])
        let readers = (0..<2).map { reader in
            Thread {
                for pass in 0..<15 {
                    var counts: [String: Int] = [:]
                    for name in Self.names(in: vlfs.path("big")) { counts[name, default: 0] += 1 }
                    let twice = counts.filter { $0.value > 1 }.map(\.key)
                    let missing = stable.subtracting(counts.keys)
                    if !twice.isEmpty || !missing.isEmpty {
                        problems.withLock { $0.append("reader \(reader) pass \(pass): \(twice.count) twice (\(twice.prefix(3))), \(missing.count) missing") }
                    }
                }
            }
        }
        readers.forEach { $0.start() }
        while readers.contains(where: { !$0.isFinished }) { usleep(10_000) }
        done.store(true, ordering: .relaxed)
        while !churn.isFinished { usleep(10_000) }
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
    }
}

@Suite(.serialized) struct CopyUpTests {
    /// Blobs and the private layer on different filesystems (the repository elsewhere than the home):
    /// the kernel cannot copy between them, so copy-up reads and writes.
    @Test func copyUpWorksAcrossFilesystems() throws {
        let workspace = try Workspace()
        try workspace.scratch.write("tree/etc/app.conf", String(repeating: "shared\n", count: 100_000))
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/tree", "--name", "app", "--version", "1"))
        try shell("mv '\(workspace.home)' '\(workspace.home).disk' && mkdir '\(workspace.home)' && mount -t tmpfs tmpfs '\(workspace.home)' && cp -a '\(workspace.home).disk/.' '\(workspace.home)/'")
        defer { umount2(workspace.home, Int32(MNT_DETACH)) }
        let ldf = workspace.scratch.path + "/app.ldf", mountpoint = workspace.scratch.path + "/mnt"
        try AtomicFile.write("main/app 1\n", to: ldf)
        try makeDirectories(mountpoint)
        expectSuccess(try workspace.strata("mount", ldf, mountpoint, "--name", "app"))
        defer { _ = try? workspace.strata("umount", mountpoint) }
        let fd = open(mountpoint + "/etc/app.conf", O_WRONLY | O_APPEND)
        #expect(fd >= 0, "open for writing copies the file up: \(String(cString: strerror(errno)))")
        if fd >= 0 {
            _ = write(fd, "private\n", 8)
            close(fd)
        }
        #expect(try String(contentsOfFile: mountpoint + "/etc/app.conf", encoding: .utf8) == String(repeating: "shared\n", count: 100_000) + "private\n")
    }
}

@Suite(.serialized) struct SnapshotGateTests {
    /// Bytes the process has read so far (`rchar` of /proc/PID/io).
    static func bytesRead(by pid: String) -> Int {
        let io = (try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)) ?? ""
        return io.split(separator: "\n").first { $0.hasPrefix("rchar:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    /// A snapshot hashes the private layer before it closes the gate: a change made while it hashes a
    /// large private file completes before the snapshot does, instead of waiting for all of it.
    @Test func changesDoNotWaitForASnapshotToHash() throws {
        let vlfs = try MountedWorkspace(layers: [("app", "1", ["etc/app.conf": "conf\n"])], ldf: ["main/app 1"])
        try shell("head -c 800M /dev/zero | tr '\\0' 'x' > '\(vlfs.path("big"))'")
        let pid = try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let finished = Atomic<Bool>(false)
        let snapshot = Thread {
            _ = try? vlfs.workspace.strata("image", "snapshot", vlfs.name, "--image", "gate")
            finished.store(true, ordering: .releasing)
        }
        let before = Self.bytesRead(by: pid)
        snapshot.start()
        // Wait until the daemon is well into hashing the big file.
        while !finished.load(ordering: .acquiring) && Self.bytesRead(by: pid) - before < 100 << 20 { usleep(1000) }
        try vlfs.write("etc/app.conf", "changed during the snapshot\n")
        let hashedBeforeTheChange = Self.bytesRead(by: pid) - before
        while !snapshot.isFinished { usleep(10_000) }
        let hashedInAll = Self.bytesRead(by: pid) - before
        #expect(hashedInAll >= 800 << 20, "the snapshot read the big file")
        #expect(hashedBeforeTheChange < 600 << 20, "the change waited for the big file to be hashed (\(hashedBeforeTheChange >> 20) MiB of \(hashedInAll >> 20))")
        #expect(try vlfs.read("etc/app.conf") == "changed during the snapshot\n")
        let images = expectSuccess(try vlfs.workspace.strata("image", "list")).stdout
        #expect(images.contains("gate"))
    }
}
