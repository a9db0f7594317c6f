import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Power cuts on a real disk stack (ext4 on a loop device over `PowerCutDisk`): what was promised
/// durable survives, and nothing half-made shows.
@Suite(.serialized) struct CrashConsistencyTests {
    /// The emulation itself, at the block level: a flushed write is durable, an unflushed one is read
    /// back but lost in the power cut, and one after the cut is acknowledged and lost.
    @Test func powerCutDiskKeepsOnlyFlushedWrites() throws {
        let scratch = try TemporaryDirectory()
        let disk = PowerCutDisk(in: scratch.path)
        defer { disk.tearDown() }
        try disk.powerOn(megabytes: 16)
        #expect(disk.writeCache == "write back", "\(disk.device) declares no volatile cache, so nothing would flush it")
        // O_DIRECT (which Glibc's module leaves out; 040000 on Linux): every write and read goes to the
        // disk, none stays in the block device's page cache.
        var fd = open(disk.device, O_RDWR | 0o40000 | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", disk.device) }
        defer { if fd >= 0 { close(fd) } }
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { block.deallocate() }
        func write(_ text: String, at index: Int) throws {
            block.copyBytes(from: Array(text.utf8) + [UInt8](repeating: 0, count: 4096 - text.utf8.count))
            guard pwrite(fd, block.baseAddress, 4096, off_t(index * 4096)) == 4096 else { throw SystemError("write block \(index)", disk.device) }
        }
        func read(at index: Int) throws -> String {
            guard pread(fd, block.baseAddress, 4096, off_t(index * 4096)) == 4096 else { throw SystemError("read block \(index)", disk.device) }
            return String(decoding: block.prefix { $0 != 0 }, as: UTF8.self)
        }

        try write("flushed", at: 0)
        let beforeFlush = try disk.counters()
        guard fsync(fd) == 0 else { throw SystemError("fsync", disk.device) }
        let afterFlush = try disk.counters()
        #expect(afterFlush.fsyncs > beforeFlush.fsyncs && afterFlush.pending == 0, "before the flush: \(beforeFlush); after: \(afterFlush)")
        try write("unflushed", at: 1)
        #expect(try disk.counters().pending == 1)
        #expect(try read(at: 1) == "unflushed", "the disk does not read back what it was written")
        try disk.cutPower()
        try write("after the cut", at: 2)
        guard fsync(fd) == 0 else { throw SystemError("fsync", disk.device) }
        #expect(try disk.counters().dropped == 1)
        close(fd)
        fd = -1
        disk.tearDown()

        let image = try #require(FileManager.default.contents(atPath: disk.image))
        func durable(_ index: Int) -> String { String(decoding: image[(index * 4096)..<(index * 4096 + 4096)].prefix { $0 != 0 }, as: UTF8.self) }
        #expect(durable(0) == "flushed")
        #expect(durable(1) == "", "an unflushed write survived the power cut")
        #expect(durable(2) == "", "a write after the power cut reached the disk")
    }

    /// The emulation under ext4: fsync sends flushes, a file synced survives the power cut and one
    /// never synced does not, and the filesystem is consistent once its journal is replayed.
    @Test func ext4OnThePowerCutDiskKeepsWhatWasSynced() throws {
        let scratch = try TemporaryDirectory()
        let disk = PowerCutDisk(in: scratch.path)
        defer { disk.tearDown() }
        try disk.powerOn()
        try disk.format()
        let root = scratch.path + "/fs"
        try disk.mount(at: root)

        let before = try disk.counters()
        try writeFile(root + "/synced", "kept\n", sync: true)
        let after = try disk.counters()
        #expect(after.fsyncs > before.fsyncs, "fsync on ext4 sent no flush to the disk: \(before), then \(after)")
        try writeFile(root + "/unsynced", "lost\n", sync: false)
        try disk.cutPower()
        try writeFile(root + "/after-cut", "dropped\n", sync: true)  // acknowledged, as by a disk without power
        #expect(try disk.counters().dropped > 0)
        disk.tearDown()

        try disk.attachImage(at: root)
        #expect(try contents(root + "/synced") == "kept\n")
        #expect(try contents(root + "/unsynced") != "lost\n", "a file never synced survived the power cut")
        #expect(try contents(root + "/after-cut") == nil, "a file written after the power cut reached the disk")
        disk.tearDown()
        try runTool("e2fsck", "-f", "-n", disk.image)
    }

    /// A VLFS whose home is on the disk: the power goes after fsynced writes, copy-ups, whiteouts,
    /// chmods and unsynced writes. After the reboot every fsynced file and every deletion is there,
    /// and every copy of a shared file is either whole or absent (the original shows).
    @Test func vlfsKeepsWhatItPromisedThroughAPowerCut() throws {
        // The Strata home and its repository on the disk (one filesystem: a copy-up copies blobs with
        // copy_file_range, which fails with EXDEV between two filesystems).
        let scratch = try TemporaryDirectory()
        let disk = PowerCutDisk(in: scratch.path)
        defer { disk.tearDown() }
        try disk.powerOn()
        try disk.format()
        try disk.mount(at: scratch.path + "/volume")
        let home = scratch.path + "/volume/home", repository = scratch.path + "/volume/repo"
        func strata(_ arguments: String...) throws -> Execution { try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home]) }
        expectSuccess(try strata("repo", "init", repository))
        expectSuccess(try strata("repo", "add", "main", repository))
        // The shared layer: 320 files in 8 directories, each a few KiB with its own contents.
        let shared = (0..<320).map { "usr/share/data/d\($0 % 8)/f\($0)" }
        func original(_ index: Int) -> String { String(repeating: "shared \(index);", count: 100 + index % 200) }
        for directory in 0..<8 { try makeDirectories(scratch.path + "/tree/usr/share/data/d\(directory)") }
        for (index, path) in shared.enumerated() { try writeFile(scratch.path + "/tree/" + path, original(index), sync: false) }
        expectSuccess(try strata("layer", "import", "main", scratch.path + "/tree", "--name", "base", "--version", "1"))
        let ldf = scratch.path + "/appliance.ldf"
        try AtomicFile.write("main/base 1\n", to: ldf)

        let mountpoint = scratch.path + "/mnt"
        try makeDirectories(mountpoint)
        func mountVLFS() throws { expectSuccess(try strata("mount", ldf, mountpoint, "--name", "appliance")) }
        defer { Self.unmountVLFS(mountpoint, strata: strata, daemonPIDFile: home + "/vlfs/appliance/daemon.pid") }
        try mountVLFS()
        func at(_ path: String) -> String { mountpoint + "/" + path }

        // What the appliance does, in groups of shared files (none from d7, which is removed whole).
        let candidates = shared.indices.filter { $0 % 8 != 7 }
        let overwritten = Array(candidates[0..<20]), patched = Array(candidates[20..<30])
        let deleted = Array(candidates[0..<5] + candidates[30..<60])
        let chmodded = Array(candidates[60..<90]), chmoddedLast = Array(candidates[90..<105])
        func rewritten(_ index: Int) -> String { "rewritten \(index)\n" }
        func patchedText(_ index: Int) -> String {
            var text = Array(original(index).utf8)
            text.replaceSubrange(100..<107, with: Array("PATCHED".utf8))
            return String(decoding: text, as: UTF8.self)
        }
        var synced: [String: String] = [:]  // path → contents, for every file fsynced through the mount

        // Private files in a shared directory, fsynced.
        for index in 0..<10 {
            synced["usr/share/data/d0/private-\(index)"] = "private \(index)\n"
            try writeFile(at("usr/share/data/d0/private-\(index)"), "private \(index)\n", sync: true)
        }
        // Files in new directories: file and directory fsynced (and the new directory's parent).
        try makeDirectory(at("srv"))
        for directory in 0..<3 {
            let path = "srv/spool-\(directory)"
            try makeDirectory(at(path))
            try syncDirectory(at("srv"))
            for item in 0..<3 {
                synced["\(path)/item-\(item)"] = "item \(directory).\(item)\n"
                try writeFile(at("\(path)/item-\(item)"), "item \(directory).\(item)\n", sync: true)
            }
            try syncDirectory(at(path))
        }
        // Shared files rewritten (copy-up, truncated) or patched in place (copy-up with data), fsynced.
        for index in overwritten { try writeFile(at(shared[index]), rewritten(index), sync: true) }
        for index in patched { try writeFile(at(shared[index]), "PATCHED", flags: O_WRONLY, offset: 100, sync: true) }
        // Shared files deleted (some just copied up), and a whole shared directory: no fsync, as
        // unlink and rmdir are durable when they return.
        for index in deleted { try removeFile(at(shared[index])) }
        let removedDirectory = "usr/share/data/d7"
        for index in shared.indices where index % 8 == 7 { try removeFile(at(shared[index])) }
        guard rmdir(at(removedDirectory)) == 0 else { throw SystemError("rmdir", at(removedDirectory)) }
        // Shared files chmodded, no fsync (a copy-up of metadata); then something else is fsynced,
        // which commits whatever the filesystem's journal holds by then.
        for index in chmodded { try changeMode(at(shared[index]), 0o600) }
        synced["srv/app.log"] = "log line\n"
        try writeFile(at("srv/app.log"), "log line\n", sync: true)
        // More chmods and new files, nothing synced after them.
        for index in chmoddedLast { try changeMode(at(shared[index]), 0o600) }
        let unsynced = (0..<10).map { "srv/unsynced-\($0)" }
        for path in unsynced { try writeFile(at(path), "unsynced\n", sync: false) }

        try disk.cutPower()
        expectSuccess(try strata("umount", mountpoint))
        disk.tearDown()

        // The reboot: the disk as it was when the power went, and the VLFS mounted again on it.
        try disk.attachImage(at: scratch.path + "/volume")
        try mountVLFS()
        // What went wrong → the paths it went wrong on, each with what it holds.
        var problems: [String: [String]] = [:]
        let deletedSet = Set(deleted).union(shared.indices.filter { $0 % 8 == 7 })
        for (index, path) in shared.enumerated() {
            let text = try contents(at(path))
            let bytes = "\(path) (\(describe(text)))"
            if deletedSet.contains(index) {
                if text != nil { problems["deleted, but back", default: []].append(bytes) }
            } else if overwritten.contains(index) {
                if text != rewritten(index) { problems["rewritten and fsynced, but not what was written", default: []].append(bytes) }
            } else if patched.contains(index) {
                if text != patchedText(index) { problems["patched and fsynced, but not what was written", default: []].append(bytes) }
            } else if chmodded.contains(index) || chmoddedLast.contains(index) {
                if text != original(index) {
                    problems["chmodded: a private copy, not whole, hides the shared original", default: []]
                        .append("\(path) (\(describe(text)) of \(original(index).utf8.count))")
                }
                var status = stat()
                if stat(at(path), &status) != 0 || ![0o644, 0o600].contains(status.st_mode & 0o7777) {
                    problems["chmodded: mode neither the shared one nor the new one", default: []].append("\(path) (\(String(status.st_mode & 0o7777, radix: 8)))")
                }
            } else if text != original(index) {
                problems["untouched, but not the shared original", default: []].append(bytes)
            }
        }
        for (path, text) in synced.sorted(by: { $0.key < $1.key }) {
            let found = try contents(at(path))
            if found != text { problems["fsynced, but not what was written", default: []].append("\(path) (\(describe(found)))") }
        }
        // The namespace: no name that was never made (such as a temporary copy), none missing.
        var expected = Set(shared.enumerated().filter { !deletedSet.contains($0.offset) }.map(\.element)).union(synced.keys)
        expected.formUnion(["usr", "usr/share", "usr/share/data", "srv"] + (0..<7).map { "usr/share/data/d\($0)" } + (0..<3).map { "srv/spool-\($0)" })
        let found = Set(try runTool("find", mountpoint, "-mindepth", "1").split(separator: "\n").map { String($0.dropFirst(mountpoint.count + 1)) })
        if found.contains(removedDirectory) { problems["removed, but back", default: []].append(removedDirectory) }
        let neverMade = found.subtracting(expected).subtracting(unsynced).subtracting(shared).subtracting([removedDirectory])
        if !neverMade.isEmpty { problems["never made, but there", default: []] += neverMade.sorted() }
        if !expected.isSubset(of: found) { problems["missing", default: []] += expected.subtracting(found).sorted() }
        if !problems.isEmpty {
            let summary = problems.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.count), as \($0.value.prefix(4).joined(separator: ", "))" }
            Issue.record("after the power cut:\n\(summary.joined(separator: "\n"))")
        }

        expectSuccess(try strata("fsck"))
        expectSuccess(try strata("private", "status", "appliance"))
        // The mount answers: it reads, writes and syncs.
        try writeFile(at("srv/after-reboot"), "alive\n", sync: true)
        #expect(try contents(at("srv/after-reboot")) == "alive\n")
        #expect(try contents(at(shared[candidates.last!])) == original(candidates.last!))
    }

    /// Unmounts the VLFS; if it will not go, kills its daemon (whose files hold the disk) and detaches it.
    private static func unmountVLFS(_ mountpoint: String, strata: (String...) throws -> Execution, daemonPIDFile: String) {
        guard MountTable.isMounted(mountpoint) else { return }
        _ = try? strata("umount", mountpoint)
        guard MountTable.isMounted(mountpoint) else { return }
        if let text = try? String(contentsOfFile: daemonPIDFile, encoding: .utf8),
           let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGKILL)
        }
        umount2(mountpoint, Int32(MNT_DETACH))
    }
}

// MARK: File operations that name the path they failed on

private func writeFile(_ path: String, _ text: String, flags: Int32 = O_WRONLY | O_CREAT | O_TRUNC, offset: off_t = 0, sync: Bool) throws {
    let fd = open(path, flags | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw SystemError("open", path) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard pwrite(fd, bytes, bytes.count, offset) == bytes.count else { throw SystemError("write", path) }
    if sync, fsync(fd) != 0 { throw SystemError("fsync", path) }
}

/// The file's text, or nil if there is no such file.
private func contents(_ path: String) throws -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 && errno == ENOENT { return nil }
    guard fd >= 0 else { throw SystemError("open", path) }
    defer { close(fd) }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &buffer, buffer.count)
        guard count >= 0 else { throw SystemError("read", path) }
        if count == 0 { return String(decoding: data, as: UTF8.self) }
        data += buffer[..<count]
    }
}

private func describe(_ text: String?) -> String {
    guard let text else { return "nothing (no such file)" }
    return "\(text.utf8.count) bytes (\(text.prefix(24).debugDescription)…)"
}

private func makeDirectory(_ path: String) throws {
    guard mkdir(path, 0o755) == 0 else { throw SystemError("mkdir", path) }
}

private func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw SystemError("open", path) }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw SystemError("fsync", path) }
}

private func removeFile(_ path: String) throws {
    guard unlink(path) == 0 else { throw SystemError("unlink", path) }
}

private func changeMode(_ path: String, _ mode: mode_t) throws {
    guard chmod(path, mode) == 0 else { throw SystemError("chmod", path) }
}
