import Foundation
import StrataStore
import StrataTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct BadInputTests {
    @Test func truncatedOrCorruptDebIsRefusedAndStoresNothing() throws {
        let workspace = try Workspace()
        let package = try downloadedPackages().first { $0.contains("/coreutils_") }!
        let before = try workspace.storeContents()
        let truncated = workspace.scratch.path + "/coreutils-truncated.deb"
        let corrupt = workspace.scratch.path + "/coreutils-corrupt.deb"
        try shell("head -c 1500000 '\(package)' > '\(truncated)'")
        try shell("cp '\(package)' '\(corrupt)' && printf 'garbage-garbage-garbage' | dd of='\(corrupt)' bs=1 seek=600000 conv=notrunc status=none")
        for bad in [truncated, corrupt] {
            let result = try workspace.strata("layer", "import", "main", bad)
            #expect(result.status != 0)
            #expect(result.stderr.contains(bad), "the error names the file: \(result.stderr)")
        }
        #expect(try workspace.storeContents() == before)
        #expect(try workspace.strata("layer", "list", "main").stdout.isEmpty)
        expectSuccess(try workspace.strata("fsck"))
    }

    @Test func malformedMetadataNamesFileAndLine() throws {
        let workspace = try Workspace()
        try workspace.scratch.write("broken_1.0/metadata", "Layer: broken\nVersion: 1.0\nDepends: foo (>= )\n")
        try workspace.scratch.write("broken_1.0/filesystem/etc/x", "x")
        let result = try workspace.strata("layer", "import", "main", workspace.scratch.path + "/broken_1.0")
        #expect(result.status != 0)
        #expect(result.stderr.contains("broken_1.0/metadata:3"), "\(result.stderr)")
        #expect(try workspace.storeContents().isEmpty)
    }

    @Test func mismatchedDirectoryNameIsRefused() throws {
        let workspace = try Workspace()
        try workspace.scratch.write("thing_2.0/metadata", "Layer: thing\nVersion: 1.0\n")
        try workspace.scratch.write("thing_2.0/filesystem/etc/x", "x")
        let result = try workspace.strata("layer", "import", "main", workspace.scratch.path + "/thing_2.0")
        #expect(result.status != 0 && result.stderr.contains("thing_1.0"))
    }

    @Test func unknownRepositoryIsNamed() throws {
        let workspace = try Workspace()
        let result = try workspace.strata("layer", "list", "nosuchrepo")
        #expect(result.status != 0 && result.stderr.contains("nosuchrepo"))
        try AtomicFile.write("main \(workspace.repository)\nthis line is wrong\n", to: workspace.home + "/repositories")
        let broken = try workspace.strata("layer", "list", "main")
        #expect(broken.status != 0 && broken.stderr.contains("repositories:2"), "\(broken.stderr)")
    }

    @Test func fsckFindsCorruptAndMissingObjects() throws {
        let workspace = try Workspace()
        let package = try downloadedPackages().first { $0.contains("/dash_") }!
        expectSuccess(try workspace.strata("layer", "import", "main", package))
        let objects = try workspace.storeContents().filter { $0.hasPrefix("objects/") }
        let victim = workspace.repository + "/" + objects[0]
        let missing = workspace.repository + "/" + objects[1]
        chmod(victim, 0o644)
        try shell("printf tampered > '\(victim)' && rm '\(missing)'")
        let result = try workspace.strata("fsck", "main")
        #expect(result.status != 0)
        let victimDigest = objects[0].split(separator: "/").suffix(2).joined()
        let missingDigest = objects[1].split(separator: "/").suffix(2).joined()
        #expect(result.stdout.contains("corrupt object sha256:\(victimDigest)"))
        #expect(result.stdout.contains("missing object sha256:\(missingDigest)") || result.stdout.contains("corrupt"), "\(result.stdout)")
    }

    /// SIGKILL at many moments of a large import: the store and index stay consistent every time.
    @Test func killedImportLeavesFsckClean() throws {
        let workspace = try Workspace()
        try shell("mkdir -p '\(workspace.scratch.path)/big' && for i in $(seq 1 40); do head -c 2000000 /dev/urandom > '\(workspace.scratch.path)/big/f'$i; done")
        for delay in [0.02, 0.05, 0.1, 0.2, 0.4, 0.8] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: strataExecutable)
            process.arguments = ["layer", "import", "main", workspace.scratch.path + "/big", "--name", "big", "--version", "\(delay)"]
            process.environment = ["STRATA_HOME": workspace.home]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            expectSuccess(try workspace.strata("fsck", "main"))
            expectSuccess(try workspace.strata("layer", "list", "main"))
        }
        // A later import finishes, and the leftovers of the killed ones are gone.
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/big", "--name", "big", "--version", "2"))
        #expect(try workspace.storeContents().allSatisfy { $0.hasPrefix("objects/") })
        expectSuccess(try workspace.strata("fsck", "main"))
    }
}
