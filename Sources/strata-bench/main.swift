// Micro-benchmarks of hot paths that sit on the mount path: manifest encoding and decoding.
// Run with `swift run -c release strata-bench`; `strata-bench derive …` builds image families for
// benchmarks/mirage.sh (see DeriveImages.swift).
import Foundation
import StrataStore

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "derive" {
    try deriveImages(Array(CommandLine.arguments.dropFirst(2)))
    exit(0)
}

func measure(_ label: String, repeat count: Int = 5, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<count {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return best
}

let entryCount = 100_000
let entries = (0..<entryCount).map { i in
    TreeEntry(name: String(format: "file-%06d.so", i), kind: .regular, mode: 0o644, uid: 0, gid: 0,
              mtime: Timestamp(seconds: 1_700_000_000 + Int64(i), nanoseconds: UInt32(i)), size: UInt64(i * 37),
              digest: SHA256.hash(withUnsafeBytes(of: i) { Array($0) }))
}
let tree = Tree(entries: entries)
var bytes: [UInt8] = []
let encode = measure("encode") { bytes = tree.encoded() }
var decoded: Tree?
let decode = try measure("decode") { decoded = try Tree(decoding: bytes) }
precondition(decoded == tree)
var hits = 0
let lookups = measure("lookup") {
    for i in stride(from: 0, to: entryCount, by: 1) where tree.entry(named: entries[i].name) != nil { hits += 1 }
}

print("""
    | operation (one directory of \(entryCount) entries, \(bytes.count / 1024) KiB manifest) | best of 5 |
    |---|---|
    | encode | \(String(format: "%.1f", encode)) ms |
    | decode | \(String(format: "%.1f", decode)) ms (\(String(format: "%.0f", Double(entryCount) / decode * 1000)) entries/s) |
    | \(entryCount) lookups by name | \(String(format: "%.1f", lookups)) ms |
    """)
