import Foundation
import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// Runs configuration scripts and dpkg inside a mounted VLFS, in the `Sandbox`, with a clean
/// environment, their output appended to the VLFS's configuration log (rotated past 4 MiB).
final class ScriptRunner {
    let mountpoint: String
    let log: String
    /// Where a script's bytes wait for the sandbox to bind them at `/run/strata` (in the VLFS's state).
    let staging: String

    init(mountpoint: String, log: String, staging: String) {
        self.mountpoint = mountpoint
        self.log = log
        self.staging = staging
    }

    static let basicEnvironment = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
        "DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true", "\(DpkgDatabase.configuringVariable)=1",
    ]

    /// Runs `script` (its bytes) as `/run/strata/NAME ARGUMENTS…`; its exit status.
    func run(script bytes: [UInt8], named name: String, arguments: [String], environment: [String]) throws -> Int32 {
        try? FileManager.default.removeItem(atPath: staging)
        try makeDirectories(staging, mode: 0o755)
        try AtomicFile.write(bytes, to: staging + "/" + name, mode: 0o755)
        return try run(["/run/strata/" + name] + arguments, environment: environment)
    }

    /// Runs a program of the VLFS (such as `/usr/bin/dpkg`); its exit status.
    func run(_ program: [String], environment: [String] = []) throws -> Int32 {
        try makeDirectories(staging, mode: 0o755)
        try rotateLog()
        try append("== \(Date()) \(program.joined(separator: " "))\n")
        let pid = try Spawn.start(arguments: ["strata", "internal", "sandbox", "--root", mountpoint, "--scripts", staging, "--"] + program,
                                  log: log, environment: Self.basicEnvironment + environment)
        let status = try Spawn.wait(pid)
        try append("== exit status \(status)\n")
        return status
    }

    private func append(_ text: String) throws {
        let file = try FileDescriptor.open(log, O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
        try Array(text.utf8).withUnsafeBytes { try file.write($0) }
    }

    private func rotateLog() throws {
        var status = stat()
        guard stat(log, &status) == 0, status.st_size > 4 << 20 else { return }
        _ = try sys("rename", log) { rename(log, log + ".1") }
    }
}
