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
