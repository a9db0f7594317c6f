import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// FUSE over io_uring (`strata mount --io-uring`): where the kernel's `enable_uring` is on, the
/// daemon's requests come over the ring and the VLFS behaves as it does over /dev/fuse; where it is
/// off, the mount falls back to /dev/fuse and says why. Each test sets the module parameter and puts
/// back what it was.
@Suite(.serialized) struct IoUringTests {
    static let parameter = "/sys/module/fuse/parameters/enable_uring"
    /// Text no layer file repeats by chance: a file's bytes depend on its name and the offset.
    static func contents(_ name: String, size: Int) -> String {
        var text = ""
        text.reserveCapacity(size)
        var line = 0
        while text.utf8.count < size {
            text += "\(name) line \(line)\n"
            line += 1
        }
        return String(text.utf8.prefix(size))!
    }

    /// Shared files: small, one of 600 KiB (read through the daemon, which splices it), one of 2 MiB
    /// (read by the kernel from its blob, passthrough), and a directory of 300 names.
    static let files: [String: String] = {
        var files = ["etc/small.conf": "small\n", "srv/medium.bin": contents("medium", size: 600 << 10), "srv/large.bin": contents("large", size: 2 << 20)]
        for index in 0..<300 { files["srv/many/f\(index)"] = "\(index)\n" }
        return files
    }()

    static func withEnableUring<T>(_ value: Bool, _ body: () throws -> T) throws -> T {
        let before = try String(contentsOfFile: parameter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try (value ? "Y" : "N").write(toFile: parameter, atomically: false, encoding: .utf8)
        defer { try? before.write(toFile: parameter, atomically: false, encoding: .utf8) }
        return try body()
    }

    static func statistic(_ name: String, of vlfs: MountedWorkspace) throws -> Int {
        let reply = try ControlSocketTests.client(of: vlfs, "s = connect(); send(s, b'statistics\\n'); print(reply(s))").first ?? ""
        let field = try #require(reply.split(separator: " ").first { $0.hasPrefix(name + "=") }, "\(reply)")
        return try #require(Int(field.dropFirst(name.count + 1)), "\(reply)")
    }

    static func daemonLog(_ vlfs: MountedWorkspace) throws -> String {
        try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.log", encoding: .utf8)
    }

    /// Reads, writes, listings, attributes and changes of every kind on a ring mount: the same answers
    /// as the layers hold, and every request the daemon counts came over the ring.
    @Test func requestsComeOverTheRing() throws {
        try Self.withEnableUring(true) {
            let vlfs = try MountedWorkspace(layers: [("data", "1", Self.files)], ldf: ["main/data 1"],
                                            mountOptions: ["--io-uring", "--passthrough-minimum-size", String(1 << 20)])
            for (path, text) in Self.files where !path.hasPrefix("srv/many/") { #expect(try vlfs.read(path) == text, "\(path)") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: vlfs.path("srv/many")).count == 300)
            // Large writes and reads of a private file fill whole payload buffers.
            let written = Self.contents("written", size: 3 << 20)
            try vlfs.write("srv/written.bin", written)
            #expect(try vlfs.read("srv/written.bin") == written)
            try ExtendedAttributes.set(vlfs.path("etc/small.conf"), ExtendedAttribute(name: "user.note", value: Array("kept".utf8)))
            #expect(try ExtendedAttributes.get(.path(vlfs.path("etc/small.conf")), "user.note") == Array("kept".utf8))
            #expect(rename(vlfs.path("etc/small.conf"), vlfs.path("etc/renamed.conf")) == 0)
            #expect(mkdir(vlfs.path("srv/new"), 0o755) == 0)
            #expect(unlink(vlfs.path("srv/many/f7")) == 0)
            #expect(try vlfs.read("etc/renamed.conf") == "small\n")
            #expect(!vlfs.exists("srv/many/f7"))

            let counts = try MountTests().requests(of: vlfs)
            #expect(counts["read", default: 0] > 0, "the medium file and the private one are read through the daemon")
            let answered = counts.filter { $0.key != "forget" && $0.key != "batchForget" }.values.reduce(0, +)
            // FORGET still comes through /dev/fuse; so do requests libfuse answers itself, counted by neither.
            #expect(try Self.statistic("ring-requests", of: vlfs) >= answered, "\(counts)")
            try vlfs.unmount()
            let log = try Self.daemonLog(vlfs)
            #expect(!log.contains("serving /dev/fuse"), "\(log)")
            #expect(log.contains("over io_uring: ") && !log.contains("over io_uring: 0\n"), "\(log)")
        }
    }

    /// The differential test against overlayfs, over the ring.
    @Test func randomOperationsMatchOverlayfsOverTheRing() throws {
        let workspace = try Self.withEnableUring(true) { try DifferentialTests.compare(seed: 5, mountOptions: ["--io-uring"]) }
        let log = workspace.home + "/vlfs/stack/daemon.log"
        #expect(eventually { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("over io_uring: ") })
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!text.contains("over io_uring: 0\n") && !text.contains("serving /dev/fuse"), "\(text)")
    }

    /// With `enable_uring` off the mount serves /dev/fuse, and its log says why.
    @Test func fallsBackToDevFuseWhenTheKernelRefuses() throws {
        try Self.withEnableUring(false) {
            let vlfs = try MountedWorkspace(layers: [("data", "1", Self.files)], ldf: ["main/data 1"], mountOptions: ["--io-uring"])
            #expect(try vlfs.read("srv/medium.bin") == Self.files["srv/medium.bin"])
            try vlfs.write("etc/written.conf", "written\n")
            #expect(try vlfs.read("etc/written.conf") == "written\n")
            #expect(try Self.statistic("ring-requests", of: vlfs) == 0)
            #expect(try Self.daemonLog(vlfs).contains("enable_uring is N"))
        }
    }
}
