import Foundation
import StrataStore
import StrataTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `strata mount --spin-wait MICROSECONDS`: one daemon thread at a time reads /dev/fuse, spinning
/// before it sleeps (`RequestReader`). A slow request must not hold up the others, and an idle mount
/// must cost no CPU.
@Suite(.serialized) struct SpinWaitTests {
    /// The daemon's CPU time so far (user and system), in clock ticks, from /proc/PID/stat.
    static func cpuTicks(_ pid: Int32) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // The fields after the command name's closing parenthesis: state is the first, utime the 12th.
        let fields = text[text.index(after: try #require(text.lastIndex(of: ")")))...].split(separator: " ")
        return try #require(Int(fields[11])) + (try #require(Int(fields[12])))
    }

    static func daemon(of vlfs: MountedWorkspace) throws -> Int32 {
        try #require(Int32(try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// The longest spin allowed, so that a reader that never stopped spinning would burn the whole wait.
    @Test func anIdleMountCostsNoCPU() throws {
        let files = Dictionary(uniqueKeysWithValues: (0..<50).map { ("srv/f\($0)", "file \($0)\n") })
        let vlfs = try MountedWorkspace(layers: [("data", "1", files)], ldf: ["main/data 1"], mountOptions: ["--spin-wait", "10000"])
        let pid = try Self.daemon(of: vlfs)
        for (path, contents) in files { #expect(try vlfs.read(path) == contents) }
        try vlfs.write("srv/new", "private\n")
        // Past the spin and the watcher's idle looks, then two seconds of nothing.
        usleep(200_000)
        let before = try Self.cpuTicks(pid)
        sleep(2)
        let used = try Self.cpuTicks(pid) - before
        #expect(used <= sysconf(Int32(_SC_CLK_TCK)) / 10, "the idle daemon used \(used) clock ticks in 2 s")
        // And it still answers, then unmounts.
        #expect(try vlfs.read("srv/new") == "private\n")
        try vlfs.unmount()
        #expect(LazyMountTests.eventually(10) { kill(pid, 0) != 0 }, "the daemon exited at unmount")
    }

    /// A file whose blob comes slowly (a lazy fetch from a rate-limited server) holds up its reader
    /// only: lookups and reads of other files are answered meanwhile, with or without spinning.
    @Test(arguments: ["0", "50"]) func aSlowRequestDoesNotHoldUpTheOthers(_ spinWait: String) throws {
        let remote = try RemoteWorkspace(.strata, label: "spin-\(spinWait)", rateLimit: 2_000_000)
        try AtomicFile.write("remote/app 1\nremote/base 1\nremote/bulk 1\n", to: remote.ldf)
        expectSuccess(try remote.client("mount", remote.ldf, remote.mountpoint, "--name", "appliance", "--fetch", "on-open", "--spin-wait", spinWait))
        #expect(try remote.read("usr/bin/app") == "app one\n")
        let bulk = LazyMountTests.bulk
        let partial = "\(remote.mirror)/partial/\(LazyMountTests.bulkBlob.hex)"

        // The fetch happens in the OPEN (the kernel then reads the blob itself, passthrough): the slow
        // request is over when open returns.
        let slowDone = Atomic<Bool>(false)
        let slowRead = Mutex<String?>(nil)
        let slow = Thread {
            let descriptor = open(remote.mountpoint + "/var/lib/bulk/data", O_RDONLY)
            slowDone.store(true, ordering: .releasing)
            guard descriptor >= 0 else { return }
            defer { close(descriptor) }
            let text = try? FileHandle(fileDescriptor: descriptor).readToEnd().map { String(decoding: $0, as: UTF8.self) }
            slowRead.withLock { $0 = text }
        }
        slow.start()
        #expect(LazyMountTests.eventually(10) { (try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int) ?? 0 > 0 },
                "the slow fetch has begun")
        // Each name is new to the kernel, so each stat is a LOOKUP the daemon answers.
        var attributes = stat()
        for index in 0..<20 { #expect(stat(remote.mountpoint + "/no-such-\(index)", &attributes) != 0 && errno == ENOENT) }
        #expect(try remote.read("usr/bin/app") == "app one\n")
        let answeredDuringFetch = !slowDone.load(ordering: .acquiring)
        #expect(answeredDuringFetch, "the others were answered while the slow fetch ran (8 MiB at 2 MB/s)")

        let finished = LazyMountTests.eventually(60) { slowDone.load(ordering: .acquiring) }
        #expect(finished)
        #expect(LazyMountTests.eventually(10) { slowRead.withLock { $0 } != nil })
        #expect(slowRead.withLock { $0 } == bulk)
        expectSuccess(try remote.client("umount", remote.mountpoint))
    }
}
