import Foundation
import Mirage
import StrataLayers
import StrataStore
import StrataTestSupport

/// A scratch Strata home with a catalog, and source trees written from file lists.
final class CatalogFixture: Sendable {
    let scratch: TemporaryDirectory
    let catalog: Catalog

    init(_ label: String = #function) throws {
        scratch = try TemporaryDirectory(label)
        catalog = try Catalog(home: StrataHome(explicit: scratch.path + "/home"))
    }

    var home: StrataHome { catalog.home }

    /// Writes `files` (path → contents; a trailing '/' makes a directory) into a fresh directory, with
    /// every time set to one instant so that only what the test changes differs between trees.
    func tree(_ label: String, _ files: [String: String], modes: [String: mode_t] = [:]) throws -> String {
        let root = scratch.path + "/trees/" + label
        try makeDirectories(root)
        for (path, contents) in files {
            if path.hasSuffix("/") {
                try makeDirectories(root + "/" + path)
            } else {
                try scratch.write("trees/\(label)/\(path)", contents, mode: modes[path] ?? 0o644)
            }
        }
        for (path, mode) in modes where path.hasSuffix("/") { chmod(root + "/" + path, mode) }
        try shell("find '\(root)' -exec touch -h -d @1000000000 {} +")
        return root
    }

    @discardableResult
    func checkin(_ name: String, _ files: [String: String], modes: [String: mode_t] = [:], by user: User = User(uid: 0, name: "root")) throws -> ImageVersion {
        try catalog.checkin(path: try tree("\(name)-\(UUID().uuidString)", files, modes: modes), name: name, by: user)
    }
}

let alice = User(uid: 1000, name: "alice")
let bob = User(uid: 1001, name: "bob")
let root = User(uid: 0, name: "root")
