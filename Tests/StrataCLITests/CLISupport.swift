import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A scratch Strata home with one repository named `main`, driven through the `strata` binary.
final class Workspace: Sendable {
    let scratch: TemporaryDirectory
    var home: String { scratch.path + "/home" }
    var repository: String { scratch.path + "/repo" }

    init(_ label: String = #function) throws {
        scratch = try TemporaryDirectory(label)
        try expectSuccess(strata("repo", "init", repository))
        try expectSuccess(strata("repo", "add", "main", repository))
    }

    func strata(_ arguments: String...) throws -> Execution {
        try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home])
    }

    func strata(_ arguments: [String]) throws -> Execution {
        try execute(strataExecutable, arguments, environment: ["STRATA_HOME": home])
    }

    /// Mounts a VLFS with `strata mount`, which returns once it answers. Pair it with `unmount` in a
    /// `defer`, so that a failing test leaves no mount behind.
    func mount(_ ldf: String, at mountpoint: String, options: [String] = []) throws {
        let mounted = try strata(["mount", ldf, mountpoint] + options)
        guard mounted.status == 0 else { throw StoreError("strata mount \(ldf) \(mountpoint): \(mounted.stderr)") }
    }

    /// Object files and staging leftovers, to prove that a failure stored nothing.
    func storeContents() throws -> [String] {
        try shell("cd '\(repository)' && find objects tmp -type f | sort").split(separator: "\n").map(String.init)
    }
}

@discardableResult
func expectSuccess(_ execution: Execution, sourceLocation: SourceLocation = #_sourceLocation) -> Execution {
    #expect(execution.status == 0, "exit \(execution.status): \(execution.stderr)", sourceLocation: sourceLocation)
    return execution
}

/// Where the source tree's sample layers are.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// Real packages from the distribution, fetched once with `apt-get download` into a cache that
/// survives between runs. Chosen for what they hold: setuid files (passwd, mount, sudo), a hard link
/// (perl-base), empty directories (base-files), many symlinks (coreutils, libc6, tzdata).
let debianPackages = ["base-files", "bash", "coreutils", "dash", "libacl1", "libc6", "mount", "ncurses-base", "passwd", "perl-base", "sudo", "tzdata"]

func downloadedPackages(_ names: [String] = debianPackages) throws -> [String] {
    let cache = "/tmp/strata-test-debs"
    try makeDirectories(cache)
    let missing = names.filter { name in
        !((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []).contains { $0.hasPrefix(name + "_") && $0.hasSuffix(".deb") }
    }
    if !missing.isEmpty {
        try shell("cd \(cache) && chmod 777 . && apt-get download -q \(missing.joined(separator: " ")) >/dev/null 2>&1")
    }
    return try names.map { name in
        guard let file = try FileManager.default.contentsOfDirectory(atPath: cache).sorted().last(where: { $0.hasPrefix(name + "_") && $0.hasSuffix(".deb") }) else {
            throw StoreError("apt-get download \(name) fetched nothing")
        }
        return cache + "/" + file
    }
}

/// Unmounts a VLFS or a kernel filesystem, detaching it lazily if it is busy.
func unmount(_ mountpoint: String) {
    if umount2(mountpoint, 0) != 0 { umount2(mountpoint, Int32(MNT_DETACH)) }
}
