import Foundation
import StrataStore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed when the test's scope ends.
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = #function) throws {
        let template = "/tmp/strata-test-\(label.filter { $0.isLetter || $0.isNumber })-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard mkdtemp(&bytes) != nil else { throw SystemError("mkdtemp", template) }
        path = String(decoding: bytes.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Detaches anything a failed test left mounted beneath the directory, then removes it.
    deinit {
        for mount in MountTable.current().reversed() where mount.mountpoint.hasPrefix(path + "/") {
            umount2(mount.mountpoint, Int32(MNT_DETACH))
        }
        try? removeTree(path)
    }

    public func write(_ relative: String, _ text: String, mode: mode_t = 0o644) throws {
        let full = path + "/" + relative
        try makeDirectories((full as NSString).deletingLastPathComponent)
        try AtomicFile.write(text, to: full, mode: mode)
    }
}

@discardableResult
public func shell(_ command: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw StoreError("command failed (\(process.terminationStatus)): \(command)") }
    return String(decoding: output, as: UTF8.self)
}

/// Imports a directory into a scratch store and lists every entry by path, so two directories can be
/// compared entry by entry; the root digest summarises the whole comparison.
public func listing(of directory: String, store: ObjectStore) throws -> (digest: Digest, entries: [String: TreeEntry]) {
    let batch = try store.beginBatch()
    var noCache: StatCache? = nil
    let root = try DirectoryImporter.importTree(at: directory, into: batch, statCache: &noCache).root
    try batch.commit()
    var entries: [String: TreeEntry] = [:]
    try store.walk(root.digest!) { path, entry in entries[path] = entry }
    return (root.digest!, entries)
}

public func expectIdentical(_ a: String, _ b: String, store: ObjectStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let left = try listing(of: a, store: store)
    let right = try listing(of: b, store: store)
    if left.digest == right.digest { return }
    for path in Set(left.entries.keys).union(right.entries.keys).sorted() where left.entries[path] != right.entries[path] {
        Issue.record("\(path): \(String(describing: left.entries[path])) != \(String(describing: right.entries[path]))", sourceLocation: sourceLocation)
        return
    }
    Issue.record("trees differ only in hard-link grouping", sourceLocation: sourceLocation)
}

/// The result of running a program.
public struct Execution: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a program with arguments (no shell), capturing both streams.
public func execute(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Execution {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Drain stderr concurrently so a chatty child cannot block on a full pipe.
    let errData = Mutex(Data())
    let reader = Thread { errData.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    return Execution(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData.withLock { $0 }, as: UTF8.self))
}

/// The `strata` binary built beside the test bundle.
public let strataExecutable: String = {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        let path = candidate.appendingPathComponent("strata").path
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return bundle.appendingPathComponent("strata").path
}()
