import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing
import VLFS
#if canImport(Glibc)
import Glibc
#endif

/// A repository of small layers built from file lists, a Strata home naming it `main`, and unions
/// composed from LDF text — the whole path a mount takes, without FUSE.
final class UnionFixture: Sendable {
    let scratch: TemporaryDirectory
    let home: StrataHome
    let repository: Repository

    init(_ label: String = #function) throws {
        scratch = try TemporaryDirectory(label)
        home = StrataHome(explicit: scratch.path + "/home")
        repository = try Repository.create(at: scratch.path + "/repo")
        try home.addRepository(name: "main", location: repository.path)
    }

    /// Imports a layer whose files are `path: contents`; a path ending in "/" is an empty directory.
    @discardableResult
    /// `links`: hard links to make, new name to an existing file of `files`.
    func layer(_ name: String, _ version: String, _ files: [String: String], replaces: String? = nil, links: [String: String] = [:]) throws -> LayerRecord {
        let tree = "\(scratch.path)/trees/\(name)_\(version)"
        try makeDirectories(tree)
        for (path, contents) in files {
            if path.hasSuffix("/") { try makeDirectories(tree + "/" + path) } else { try scratch.write("trees/\(name)_\(version)/\(path)", contents) }
        }
        for (link, target) in links { _ = try sys("link", tree + "/" + link) { Glibc.link(tree + "/" + target, tree + "/" + link) } }
        var text = "Layer: \(name)\nVersion: \(version)\n"
        if let replaces { text += "Replaces: \(replaces)\n" }
        return try repository.importLayer(from: tree, metadata: try LayerMetadata(parsing: text, file: "test"))
    }

    func ldf(_ name: String, _ lines: [String]) throws -> String {
        let path = "\(scratch.path)/\(name).ldf"
        try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: path)
        return path
    }

    func union(_ ldf: String, vlfs: String = "test") throws -> Union {
        let state = try VLFSState(home: home, name: vlfs)
        return try Union(stack: try Composition.stack(ldf: ldf, home: home, state: state), privateRoot: state.privateRoot, whiteoutDirectory: state.whiteouts)
    }

    func stack(_ ldf: String, vlfs: String = "test") throws -> LayerStack {
        try Composition.stack(ldf: ldf, home: home, state: try VLFSState(home: home, name: vlfs))
    }
}

extension Union {
    /// The inode of a path, looked up component by component as the kernel would.
    func inode(_ path: String) throws -> UInt64 {
        var inode: UInt64 = 1
        for component in path.split(separator: "/") { inode = try lookup(parent: inode, name: String(component)).inode }
        return inode
    }

    func names(_ path: String) throws -> [String] {
        try list(try inode(path)).map(\.name).sorted()
    }

    func contents(_ path: String) throws -> String { try contents(inode: try inode(path)) }

    /// What opening an inode already looked up reads.
    func contents(inode: UInt64) throws -> String {
        let file = try open(inode, flags: O_RDONLY)
        defer { close(file.descriptor) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let n = read(file.descriptor, &buffer, buffer.count)
        return String(decoding: buffer[..<max(n, 0)], as: UTF8.self)
    }

    func write(_ path: String, _ text: String, append: Bool = false) throws {
        let file = try open(try inode(path), flags: O_WRONLY | (append ? O_APPEND : O_TRUNC))
        defer { close(file.descriptor) }
        _ = text.withCString { Glibc.write(file.descriptor, $0, strlen($0)) }
    }

    func exists(_ path: String) -> Bool { (try? inode(path)) != nil }

    func parentAndName(_ path: String) throws -> (UInt64, String) {
        let parts = path.split(separator: "/").map(String.init)
        return (try inode(parts.dropLast().joined(separator: "/")), parts.last!)
    }
}
