import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The daemon counts the FUSE requests it answers by operation, and reports them through its control
/// socket (`statistics`) and, at unmount, in its log.
extension MountTests {
    @Test func requestsAreCountedByOperation() throws {
        let files = (0..<20).map { ("srv/data/f\($0)", "file \($0)\n") }
        let vlfs = try MountedWorkspace(layers: [("data", "1", Dictionary(uniqueKeysWithValues: files))], ldf: ["main/data 1"],
                                        mountOptions: Self.withOpens)
        var attributes = stat()
        #expect(stat(vlfs.path("srv/data"), &attributes) == 0)

        // A stat of a name not looked up yet is one LOOKUP, and nothing else.
        let beforeStats = try requests(of: vlfs)
        for (path, _) in files { #expect(stat(vlfs.path(path), &attributes) == 0) }
        #expect(try requests(of: vlfs).subtracting(beforeStats) == ["lookup": files.count])

        // Reading a file already looked up opens and releases it once, and looks nothing up. (Releases
        // are sent after close returns.)
        let beforeReads = try requests(of: vlfs)
        for _ in 0..<2 { #expect(try vlfs.read(files[0].0) == files[0].1) }
        #expect(try eventually { try requests(of: vlfs).subtracting(beforeReads)["release"] == 2 })
        let reads = try requests(of: vlfs).subtracting(beforeReads)
        #expect(reads["open"] == 2)
        #expect(reads["lookup"] == nil, "\(reads)")

        try vlfs.unmount()
        let log = try String(contentsOfFile: vlfs.workspace.home + "/vlfs/\(vlfs.name)/daemon.log", encoding: .utf8)
        #expect(log.contains("FUSE requests answered: lookup:"))
    }

    /// With FUSE_HANDLE_KILLPRIV_V2 the kernel asks the daemon whether a file has `security.capability`
    /// (to drop it) at the first write after it learnt the file's attributes, not before every write
    /// (without it, 3 GETXATTR per file here): the private layer's own file system drops capabilities
    /// when the daemon writes, and the daemon clears setuid and setgid when the kernel says so.
    @Test func writesAskForCapabilitiesOnce() throws {
        let vlfs = try MountedWorkspace(layers: Self.app, ldf: ["main/app 1", "main/base 1"])
        try makeDirectories(vlfs.path("var/spool"))
        let before = try requests(of: vlfs)
        for index in 0..<20 {
            for _ in 0..<3 {
                let fd = open(vlfs.path("var/spool/message\(index)"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
                #expect(Glibc.write(fd, "line\n", 5) == 5)
                close(fd)
            }
        }
        let counts = try requests(of: vlfs).subtracting(before)
        #expect(counts["write"] == 60, "\(counts)")
        #expect(counts["getxattr"] == 20, "\(counts)")
    }

    /// The daemon's request counts by operation, from its `statistics` answer (`requests=lookup:3,open:1`).
    func requests(of vlfs: MountedWorkspace) throws -> [String: Int] {
        let reply = try ControlSocketTests.client(of: vlfs, "s = connect(); send(s, b'statistics\\n'); print(reply(s))").first ?? ""
        let field = try #require(reply.split(separator: " ").first { $0.hasPrefix("requests=") }, "\(reply)")
        return Dictionary(uniqueKeysWithValues: field.dropFirst("requests=".count).split(separator: ",").map { pair in
            let parts = pair.split(separator: ":")
            return (String(parts[0]), Int(parts[1]) ?? -1)
        })
    }
}

extension [String: Int] {
    /// The counts that grew since `earlier`, by how much.
    func subtracting(_ earlier: [String: Int]) -> [String: Int] {
        reduce(into: [:]) { grown, count in
            if count.value != earlier[count.key] { grown[count.key] = count.value - (earlier[count.key] ?? 0) }
        }
    }
}
