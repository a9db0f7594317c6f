import CLinux
import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Where configuration scripts run: with the mounted VLFS as their root, in new mount, PID, network, IPC
/// and UTS namespaces, with `/proc` and `/sys` read-only, a `/dev` of the harmless devices and a
/// private `/dev/pts`, an empty `/run` with the scripts at `/run/strata`, and without the capabilities
/// that reach past the VLFS. The scripts come from trusted layers, but the programs they call may come
/// from a private layer a compromised appliance wrote: in here they can change the VLFS and nothing
/// else — no host disk, no host process, no network, no mount, no module, no host mount left to reach.
/// The script is PID 1 of its namespace, so whatever it leaves running dies with it.
///
/// Two stages, both `strata internal sandbox`: the first unshares and spawns the second (which becomes
/// PID 1 of the new PID namespace), waits and passes its exit status on; the second mounts, pivots the root,
/// drops capabilities and execs the program.
public enum Sandbox {
    /// Capabilities a script never gets (numbers from linux/capability.h).
    static let droppedCapabilities: [Int32] = [
        16 /* SYS_MODULE */, 17 /* SYS_RAWIO */, 18 /* SYS_CHROOT */, 19 /* SYS_PTRACE */, 21 /* SYS_ADMIN */,
        22 /* SYS_BOOT */, 25 /* SYS_TIME */, 12 /* NET_ADMIN */, 13 /* NET_RAW */, 23 /* SYS_NICE */, 24 /* SYS_RESOURCE */,
        26 /* SYS_TTY_CONFIG */, 27 /* MKNOD */, 29 /* AUDIT_WRITE */, 30 /* AUDIT_CONTROL */, 32 /* MAC_OVERRIDE */,
        33 /* MAC_ADMIN */, 34 /* SYSLOG */, 35 /* WAKE_ALARM */, 36 /* BLOCK_SUSPEND */, 38 /* PERFMON */, 39 /* BPF */,
        40 /* CHECKPOINT_RESTORE */,
    ]

    /// The first stage: new namespaces, then the second stage in them; returns its exit status.
    public static func run(root: String, scripts: String, program: [String]) throws -> Int32 {
        try sys("unshare", root) { unshare(STRATA_CLONE_NEWNS | STRATA_CLONE_NEWPID | STRATA_CLONE_NEWNET | STRATA_CLONE_NEWIPC | STRATA_CLONE_NEWUTS) }
        try sys("mount --make-rprivate", "/") { strata_make_mounts_private() }
        let arguments = ["strata", "internal", "sandbox", "--inside", "--root", root, "--scripts", scripts, "--"] + program
        return try Spawn.wait(try Spawn.start(arguments: arguments, inheritOutput: true))
    }

    /// The second stage, PID 1 of the new namespaces: never returns.
    public static func enter(root: String, scripts: String, program: [String]) -> Never {
        do {
            umask(0o022)
            let vlfs = try FileDescriptor.open(root, O_RDONLY | O_DIRECTORY)
            try mountInside(vlfs.raw, "proc", type: "proc", attributes: STRATA_MOUNT_ATTR_NOSUID | STRATA_MOUNT_ATTR_NODEV | STRATA_MOUNT_ATTR_NOEXEC | STRATA_MOUNT_ATTR_RDONLY)
            try mountInside(vlfs.raw, "sys", type: "sysfs", attributes: STRATA_MOUNT_ATTR_NOSUID | STRATA_MOUNT_ATTR_NODEV | STRATA_MOUNT_ATTR_NOEXEC | STRATA_MOUNT_ATTR_RDONLY)
            try mountInside(vlfs.raw, "dev", type: "tmpfs", options: ["mode": "0755", "size": "1m"], attributes: STRATA_MOUNT_ATTR_NOSUID | STRATA_MOUNT_ATTR_NOEXEC) { dev in
                for (name, minor) in [("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)] {
                    try sys("mknod /dev/\(name)", root) { mknodat(dev, name, S_IFCHR | 0o666, strata_makedev(1, UInt32(minor))) }
                }
                try sys("mknod /dev/tty", root) { mknodat(dev, "tty", S_IFCHR | 0o666, strata_makedev(5, 0)) }
                for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")] {
                    try sys("symlink /dev/\(name)", root) { symlinkat(target, dev, name) }
                }
                try sys("mkdir /dev/shm", root) { mkdirat(dev, "shm", 0o1777) }
                try mountInside(dev, "pts", type: "devpts", options: ["newinstance": nil, "ptmxmode": "0666", "mode": "0620"],
                                attributes: STRATA_MOUNT_ATTR_NOSUID | STRATA_MOUNT_ATTR_NOEXEC)
            }
            try mountInside(vlfs.raw, "run", type: "tmpfs", options: ["mode": "0755", "size": "64m"], attributes: STRATA_MOUNT_ATTR_NOSUID | STRATA_MOUNT_ATTR_NODEV) { run in
                try sys("mkdir /run/lock", root) { mkdirat(run, "lock", 0o1777) }
                try sys("mkdir /run/strata", root) { mkdirat(run, "strata", 0o755) }
                let target = FileDescriptor(raw: try sys("open", root + "/run/strata") { openat(run, "strata", Beneath.pathOnly | O_DIRECTORY | O_CLOEXEC) }, path: root + "/run/strata")
                let bound = FileDescriptor(raw: try sys("open_tree", scripts) { strata_clone_mount(scripts) }, path: scripts)
                try sys("move_mount", root + "/run/strata") { strata_attach_mount(bound.raw, target.raw) }
            }
            _ = sethostname("strata-configure", 16)
            // The VLFS becomes the namespace's root and the host's mounts leave it: a chroot would keep a
            // copy of each (every other VLFS, every disk) mounted until the script ended, so that their
            // unmounts on the host would not finish.
            try sys("chdir", root) { fchdir(vlfs.raw) }
            try sys("pivot_root (the VLFS must be a mount point)", root) { strata_enter_root_alone() }
            try sys("chdir /", root) { chdir("/") }
            try droppedCapabilities.withUnsafeBufferPointer { caps in
                try sys("drop capabilities", root) { strata_drop_capabilities(caps.baseAddress, Int32(caps.count)) }
            }
            let arguments = program.map { strdup($0) } + [nil]
            execve(program[0], arguments, environ)
            throw SystemError("execve", program[0])
        } catch {
            FileHandle.standardError.write(Data("strata sandbox: \(error)\n".utf8))
            exit(127)
        }
    }

    /// Mounts a new `type` filesystem on the directory `name` of `directory` (never through a symlink;
    /// made, in the private layer, where the VLFS has none), and lets `fill` populate it
    /// through the mount's own descriptor before it is attached.
    private static func mountInside(_ directory: Int32, _ name: String, type: String, options: KeyValuePairs<String, String?> = [:], attributes: Int32,
                                    fill: ((Int32) throws -> Void)? = nil) throws {
        var target = openat(directory, name, Beneath.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if target < 0 && errno == ENOENT {
            try sys("mkdir", name) { mkdirat(directory, name, 0o755) }
            target = openat(directory, name, Beneath.pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        guard target >= 0 else { throw SystemError("open", name) }
        defer { close(target) }
        let mount = try NewMount.make(type, options: options.map { ($0.key, $0.value) }, attributes: attributes, what: name)
        if let fill {
            let filesystem = try sys("open \(type)", name) { openat(mount.raw, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            defer { close(filesystem) }
            try fill(filesystem)
        }
        try sys("attach \(type) on \(name)", name) { strata_attach_mount(mount.raw, target) }
    }

}
