import Foundation
import StrataStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed when the test's scope ends.
final class TemporaryDirectory: Sendable {
    let path: String

    init(_ label: String = #function) throws {
        let template = "/tmp/strata-test-\(label.filter { $0.isLetter || $0.isNumber })-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard mkdtemp(&bytes) != nil else { throw SystemError("mkdtemp", template) }
        path = String(decoding: bytes.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? removeTree(path) }

    func write(_ relative: String, _ text: String, mode: mode_t = 0o644) throws {
        let full = path + "/" + relative
        try makeDirectories((full as NSString).deletingLastPathComponent)
        try AtomicFile.write(text, to: full, mode: mode)
    }
}

@discardableResult
func shell(_ command: String) throws -> String {
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
func listing(of directory: String, store: ObjectStore) throws -> (digest: Digest, entries: [String: TreeEntry]) {
    let batch = try store.beginBatch()
    var noCache: StatCache? = nil
    let root = try DirectoryImporter.importTree(at: directory, into: batch, statCache: &noCache).root
    try batch.commit()
    var entries: [String: TreeEntry] = [:]
    try store.walk(root.digest!) { path, entry in entries[path] = entry }
    return (root.digest!, entries)
}

func expectIdentical(_ a: String, _ b: String, store: ObjectStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let left = try listing(of: a, store: store)
    let right = try listing(of: b, store: store)
    if left.digest == right.digest { return }
    for path in Set(left.entries.keys).union(right.entries.keys).sorted() where left.entries[path] != right.entries[path] {
        Issue.record("\(path): \(String(describing: left.entries[path])) != \(String(describing: right.entries[path]))", sourceLocation: sourceLocation)
        return
    }
    Issue.record("trees differ only in hard-link grouping", sourceLocation: sourceLocation)
}
