import Foundation
import StrataStore
import StrataTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A disk that loses power when told, for crash-consistency tests: a loop device over the file that
/// `power-cut-disk` serves (Resources/power-cut-disk.c, compiled here with gcc). The loop device has a
/// volatile write cache, so a filesystem on it flushes (fsync, journal commits); the daemon keeps every
/// write since the last flush in memory and makes it durable only on the flush. `cutPower()` drops the
/// unflushed writes and every later one. After `tearDown()`, `attachImage(at:)` mounts what the disk held
/// when the power went: the durable image on a plain loop device, as after a reboot.
///
/// Call `tearDown()` in a `defer` (after whatever is mounted on top is gone): it unmounts, detaches the
/// loop devices and stops the daemon, also after a failure.
final class PowerCutDisk {
    let directory: String
    var image: String { directory + "/disk.image" }
    private var daemonMountpoint: String { directory + "/power-cut-disk.mnt" }
    private var control: String { daemonMountpoint + "/control" }
    private var log: String { directory + "/disk.log" }
    private var daemon: Process?
    /// The loop devices and filesystems set up on this disk, undone in reverse order.
    private var loopDevices: [String] = []
    private var mounts: [String] = []

    /// `directory` holds the daemon, its image and its mountpoint; it must exist.
    init(in directory: String) {
        self.directory = directory
    }

    /// Builds the daemon, starts it on an empty image of `megabytes` and attaches a loop device to it.
    func powerOn(megabytes: Int = 256) throws {
        let executable = directory + "/power-cut-disk"
        let source = packageRoot + "/Tests/StrataCLITests/Resources/power-cut-disk.c"
        try runTool("/bin/sh", "-c", "gcc -O2 -Wall -o '\(executable)' '\(source)' $(pkg-config --cflags --libs fuse3)")
        let fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open", image) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(megabytes) << 20) == 0 else { throw SystemError("ftruncate", image) }
        try makeDirectories(daemonMountpoint)

        guard FileManager.default.createFile(atPath: log, contents: nil), let logHandle = FileHandle(forWritingAtPath: log) else {
            throw StoreError("\(log): cannot create")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [image, daemonMountpoint]
        process.standardOutput = logHandle
        process.standardError = logHandle
        try process.run()
        try? logHandle.close()
        daemon = process
        // It answers once the disk shows its size (a bound on waiting, not a timing assertion).
        var status = stat()
        for _ in 0..<200 where !(stat(daemonMountpoint + "/disk", &status) == 0 && status.st_size == off_t(megabytes) << 20) {
            guard process.isRunning else { throw StoreError("power-cut-disk exited: \(logText)") }
            usleep(50_000)
        }
        guard status.st_size == off_t(megabytes) << 20 else { throw StoreError("power-cut-disk did not mount \(daemonMountpoint): \(logText)") }
        loopDevices.append(try runTool("losetup", "--find", "--show", daemonMountpoint + "/disk").trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The loop device over the live disk (after `powerOn`) or over the image (after `attachImage`).
    var device: String { loopDevices.last ?? "" }

    /// The loop device's own settings: "write back" means it has a volatile cache and so accepts flushes.
    var writeCache: String {
        ((try? String(contentsOfFile: "/sys/block/\((device as NSString).lastPathComponent)/queue/write_cache", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A fresh ext4 on the disk (no discard: the disk implements none).
    func format() throws { try runTool("mkfs.ext4", "-q", "-E", "nodiscard", device) }

    func mount(at mountpoint: String) throws {
        try makeDirectories(mountpoint)
        guard Glibc.mount(device, mountpoint, "ext4", 0, nil) == 0 else { throw SystemError("mount \(device)", mountpoint) }
        mounts.append(mountpoint)
    }

    /// Cuts the power: from now on nothing written reaches the image.
    func cutPower() throws {
        let fd = open(control, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", control) }
        defer { close(fd) }
        guard write(fd, "cut", 3) == 3 else { throw SystemError("write", control) }
    }

    /// What the daemon counted: writes, flushes (FUSE FSYNC), pages written since the last flush, writes
    /// dropped after the power cut.
    struct Counters: CustomStringConvertible {
        var writes = 0, fsyncs = 0, pending = 0, dropped = 0
        var description: String { "writes \(writes) fsyncs \(fsyncs) pending \(pending) dropped \(dropped)" }
    }

    func counters() throws -> Counters {
        let fd = open(control, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", control) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { throw SystemError("read", control) }
        let words = String(decoding: buffer[..<count], as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
        let values = Dictionary(stride(from: 0, to: words.count - 1, by: 2).map { (words[$0], Int(words[$0 + 1])) }) { first, _ in first }
        guard let writes = values["writes"] ?? nil, let fsyncs = values["fsyncs"] ?? nil, let pending = values["pending"] ?? nil,
              let dropped = values["dropped"] ?? nil else { throw StoreError("\(control): unreadable counters \(words)") }
        return Counters(writes: writes, fsyncs: fsyncs, pending: pending, dropped: dropped)
    }

    /// After `tearDown()`: the durable image on a new loop device, mounted at `mountpoint` (the journal
    /// is replayed, as at boot).
    func attachImage(at mountpoint: String) throws {
        loopDevices.append(try runTool("losetup", "--find", "--show", image).trimmingCharacters(in: .whitespacesAndNewlines))
        try mount(at: mountpoint)
    }

    /// Unmounts the filesystems (lazily if something still holds them), detaches the loop devices and
    /// stops the daemon. Safe to call more than once.
    func tearDown() {
        for mountpoint in mounts.reversed() where umount2(mountpoint, 0) != 0 {
            umount2(mountpoint, Int32(MNT_DETACH))
        }
        mounts = []
        // A device still busy (a lazily detached filesystem) is detached when its last user closes it.
        for device in loopDevices.reversed() { _ = try? runTool("losetup", "--detach", device) }
        loopDevices = []
        if let daemon {
            if MountTable.isMounted(daemonMountpoint), umount2(daemonMountpoint, 0) != 0 { umount2(daemonMountpoint, Int32(MNT_DETACH)) }
            for _ in 0..<100 where daemon.isRunning { usleep(50_000) }
            if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) }
            daemon.waitUntilExit()
            self.daemon = nil
        }
    }

    private var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
}

/// Runs a program found on the PATH (with the sbin directories), throwing with its standard error if it fails.
@discardableResult
func runTool(_ arguments: String...) throws -> String {
    let result = try execute("/usr/bin/env", arguments, environment: ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    guard result.status == 0 else { throw StoreError("\(arguments.joined(separator: " ")): exit \(result.status): \(result.stderr)") }
    return result.stdout
}
