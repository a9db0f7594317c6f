import Foundation
import StrataLayers
import StrataResolver
import Testing

/// The editing verbs' library: holds, includes, re-resolve stability, orphans, upgrades.
@Suite struct EditingTests {
    /// app needs lib (any version) and util; lib and util each exist in two versions.
    func world(_ label: String = #function) throws -> World {
        let world = try World(label)
        try world.repository("main", [
            "app 1.0": "Depends: lib, util\n",
            "lib 1.0": "", "lib 2.0": "",
            "util 1.0": "", "util 2.0": "",
            "extra 1.0": "Depends: helper\n",
            "helper 1.0": "",
            "newer 1.0": "Depends: util (>= 2.0)\n",
        ])
        return world
    }

    @Test func resolveWritesVersionsAndImplicitBlockKeepingComments() throws {
        let world = try world()
        let path = try world.ldf("app.ldf", "# my appliance\nmain/app   # the point of it\n")
        let resolved = try world.resolve(path)
        #expect(resolved.text == "# my appliance\nmain/app 1.0 # the point of it\n\nmain/lib 2.0\nmain/util 2.0\n")
        #expect(resolved.changes == ["~ main/app (none) -> 1.0", "+ main/lib 2.0", "+ main/util 2.0"])
        #expect(try world.read(path) == "# my appliance\nmain/app   # the point of it\n", "resolving without write changes nothing")
    }

    @Test func reResolvingKeepsCurrentVersions() throws {
        let world = try world()
        let path = try world.ldf("app.ldf", "main/app 1.0\n\nmain/lib 1.0\nmain/util 1.0   # pinned by habit\n")
        #expect(try world.resolve(path).text == (try world.read(path)), "a resolved LDF resolves to itself")
        // Adding a layer that needs nothing of app's leaves lib and util alone.
        let added = try world.edit(path, .add(try references("main/extra")))
        #expect(added == "main/app 1.0\nmain/extra 1.0\n\nmain/helper 1.0\nmain/lib 1.0\nmain/util 1.0   # pinned by habit\n")
        // A layer that needs a newer util moves util, and only util.
        let moved = try world.edit(path, .add(try references("newer")))
        #expect(moved == "main/app 1.0\nmain/extra 1.0\nmain/newer 1.0\n\nmain/helper 1.0\nmain/lib 1.0\nmain/util 2.0   # pinned by habit\n")
    }

    @Test func removeDropsOrphans() throws {
        let world = try world()
        let path = try world.ldf("app.ldf", "main/app 1.0\nmain/extra 1.0\n\nmain/helper 1.0\nmain/lib 1.0\nmain/util 1.0\n")
        let text = try world.edit(path, .remove(try references("main/extra")))
        #expect(text == "main/app 1.0\n\nmain/lib 1.0\nmain/util 1.0\n")
        let message = world.failure { try world.edit(path, .remove(try references("main/lib"))) }
        #expect(message.contains("main/lib is in the implicit block of app.ldf"), "\(message)")
    }

    @Test func holdUnholdAndUpgrade() throws {
        let world = try world()
        let path = try world.ldf("app.ldf", "main/app 1.0\n\nmain/lib 1.0\nmain/util 1.0\n")
        // Holding an implicit layer makes it explicit and held at its version.
        #expect(try world.edit(path, .hold(try references("lib"))) == "main/app 1.0\n=main/lib 1.0\n\nmain/util 1.0\n")
        // Upgrade moves what is not held.
        #expect(try world.edit(path, .upgrade([])) == "main/app 1.0\n=main/lib 1.0\n\nmain/util 2.0\n")
        let message = world.failure { try world.edit(path, .upgrade(try references("main/lib"))) }
        #expect(message.contains("main/lib is held in app.ldf; unhold it to upgrade it"), "\(message)")
        #expect(try world.edit(path, .unhold(try references("main/lib"))) == "main/app 1.0\nmain/lib 1.0\n\nmain/util 2.0\n")
        #expect(try world.edit(path, .upgrade(try references("main/lib"))) == "main/app 1.0\nmain/lib 2.0\n\nmain/util 2.0\n")
        // Holding at a version that is not offered fails and names the line.
        let missing = world.failure { try world.edit(path, .hold(try references("main/lib=3.0"))) }
        #expect(missing.contains("app.ldf:2: main/lib 3.0 is not in repository 'main' (it offers 1.0, 2.0)"), "\(missing)")
        #expect(try world.read(path) == "main/app 1.0\nmain/lib 2.0\n\nmain/util 2.0\n")
    }

    @Test func addWithVersionAsksForThatVersion() throws {
        let world = try world()
        let path = try world.ldf("app.ldf", "main/app\n")
        #expect(try world.edit(path, .add(try references("main/util=1.0"))) == "main/app 1.0\nmain/util 1.0\n\nmain/lib 2.0\n")
    }

    @Test func includesAreFollowedRecursivelyAndNotRepeated() throws {
        let world = try world()
        try world.ldf("base.ldf", "main/util 1.0\n")
        try world.ldf("middle.ldf", "@base\nmain/lib 1.0\n")
        let path = try world.ldf("app.ldf", "@middle\nmain/app\n")
        let resolved = try world.resolve(path)
        // util and lib are explicit in the templates, so the appliance's implicit block is empty.
        #expect(resolved.text == "@middle\nmain/app 1.0\n")
        #expect(world.units(resolved) == ["app 1.0", "lib 1.0", "util 1.0"])
        #expect(resolved.resolution.units.allSatisfy { $0.isExplicit })
    }

    @Test func unknownRepositoriesAndLayersNameTheLine() throws {
        let world = try world()
        let repository = world.failure { _ = try world.resolve(try world.ldf("a.ldf", "# x\nnowhere/app\n")) }
        #expect(repository.hasPrefix("a.ldf:2: unknown repository 'nowhere'"), "\(repository)")
        let layer = world.failure { _ = try world.resolve(try world.ldf("b.ldf", "main/app\nmain/ghost\n")) }
        #expect(layer == "b.ldf:2: no layer 'ghost' in repository 'main'")
    }
}
