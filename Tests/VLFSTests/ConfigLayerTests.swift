import Foundation
import StrataLayers
import StrataStore
import StrataTestSupport
import Testing
import VLFS
#if canImport(Glibc)
import Glibc
#endif

@Suite struct ConfigLayerTests {
    /// Configures a template's union, turns its private layer and whiteouts into a configuration
    /// layer, and returns a fresh union over the template's layers plus that configuration layer.
    private func promoted(_ fixture: UnionFixture, configure: (Union) throws -> Void) throws -> Union {
        let template = try fixture.union(try fixture.ldf("template", ["main/aa 1", "main/bb 1"]), vlfs: "template")
        try configure(template)
        let batch = try fixture.repository.store.beginBatch()
        let whiteouts = template.stack.layers.enumerated().map { (layer: $1, paths: template.stack.whiteouts[$0].all) }
        let filesystem = try ConfigLayer.filesystem(privateLayer: template.privateRoot, whiteouts: whiteouts, previous: nil, union: template, into: batch)
        let metadata = try LayerMetadata(name: "template-config", version: DebianVersion("1"), extraFields: [MetadataField(Composition.layerTypeField, "config")])
        let digest = try batch.put(LayerManifest(metadata: metadata.controlText, filesystem: filesystem, scripts: nil).encoded())
        try batch.commit()
        try fixture.repository.registerStoredLayer(digest)
        return try fixture.union(try fixture.ldf("appliance", ["main/aa 1", "main/bb 1", "=main/template-config 1"]), vlfs: "appliance")
    }

    @Test func deletionsInAConfigurationLayerHideWhatIsBelowAndAreNotShown() throws {
        let fixture = try UnionFixture()
        try fixture.layer("aa", "1", ["etc/gone": "a", "etc/kept": "k", "srv/data/from-a": "a", "usr/share/doc/a/README": "r"])
        try fixture.layer("bb", "1", ["srv/data/from-b": "b", "usr/share/doc/b/README": "r"])
        let appliance = try promoted(fixture) { template in
            try template.unlink(parent: try template.inode("etc"), name: "gone")
            try template.unlink(parent: try template.inode("usr/share/doc/a"), name: "README")
            let data = try template.inode("srv/data")
            for name in try template.names("srv/data") { try template.unlink(parent: data, name: name) }
            let srv = try template.inode("srv")
            try template.removeDirectory(parent: srv, name: "data")
            _ = try template.makeDirectory(parent: srv, name: "data", mode: 0o750, caller: .root)
            close(try template.create(parent: try template.inode("srv/data"), name: "new", mode: 0o644, flags: O_WRONLY, caller: .root).1.descriptor)
        }
        #expect(try appliance.names("etc") == ["kept"])
        #expect(!appliance.exists("etc/gone"))
        #expect(try appliance.names("usr/share/doc/a") == [])
        #expect(try appliance.names("usr/share/doc") == ["a", "b"])
        #expect(try appliance.names("srv/data") == ["new"], "a directory made again hides the directories below it")
        #expect(try appliance.attributes(of: try appliance.inode("srv/data")).st_mode & 0o7777 == 0o750)
        #expect(try appliance.extendedAttribute(try appliance.inode("srv/data/new"), name: "user.strata.layer") == Array("template-config 1".utf8))
    }
}
