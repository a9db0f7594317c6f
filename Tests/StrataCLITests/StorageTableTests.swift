import Foundation
import StrataStore
import StrataTestSupport
import Testing

/// `strata ldf storage`: VM2Docker's storage table for machines that share their package layers.
@Suite struct StorageTableTests {
    struct Table: Decodable {
        struct Machine: Decodable {
            var name: String
            var files: UInt64
            var packageLayers: UInt64
            var configuration: UInt64
            var own: UInt64
            var reduction: Double
        }

        var machines: [Machine]
        var files: UInt64
        var layers: UInt64
        var saved: Double
    }

    @Test func machinesSharingPackageLayersCostTheirConfigurationAlone() throws {
        let workspace = try Workspace("storage")
        // One package layer of 3,000 bytes; two machines' configuration layers, one replacing a
        // 1,000-byte package file with 10 bytes (the copy holds 10, not 1,010) and adding 100.
        try workspace.scratch.write("pkg_1.0/metadata", "Layer: pkg\nVersion: 1.0\nArchitecture: all\n")
        try workspace.scratch.write("pkg_1.0/filesystem/usr/lib/big", String(repeating: "x", count: 2000))
        try workspace.scratch.write("pkg_1.0/filesystem/etc/pkg.conf", String(repeating: "c", count: 1000))
        for (name, extra) in [("one", 100), ("two", 250)] {
            try workspace.scratch.write("\(name)-config_1/metadata", "Layer: \(name)-config\nVersion: 1\nArchitecture: all\nLayer-Type: config\n")
            try workspace.scratch.write("\(name)-config_1/filesystem/etc/pkg.conf", "configured")
            try workspace.scratch.write("\(name)-config_1/filesystem/srv/data", String(repeating: "d", count: extra))
            try AtomicFile.write("main/pkg 1.0\n=main/\(name)-config 1\n", to: workspace.scratch.path + "/\(name).ldf")
        }
        expectSuccess(try workspace.strata("layer", "import", "main", workspace.scratch.path + "/pkg_1.0",
                                           workspace.scratch.path + "/one-config_1", workspace.scratch.path + "/two-config_1"))
        let ldfs = ["one", "two"].map { workspace.scratch.path + "/\($0).ldf" }
        let output = expectSuccess(try workspace.strata(["ldf", "storage", "--json"] + ldfs)).stdout
        let table = try JSONDecoder().decode(Table.self, from: Data(output.utf8))
        #expect(table.machines.map(\.name) == ["one", "two"])
        #expect(table.machines.map(\.files) == [2110, 2260] as [UInt64], "2,000 + 10 + 100 and 2,000 + 10 + 250")
        #expect(table.machines.map(\.packageLayers) == [3000, 3000] && table.machines.map(\.configuration) == [110, 260])
        #expect(table.machines.map(\.own) == [110, 260], "the package layer is shared, so each machine costs its configuration")
        #expect(abs(table.machines[0].reduction - 100 * (1 - 110.0 / 2110)) < 0.001)
        #expect(table.files == 4370 && table.layers == 3370)

        // Alone, a machine owns its package layer too; the printed table has a row per machine and a total.
        let alone = try JSONDecoder().decode(Table.self, from: Data(expectSuccess(try workspace.strata("ldf", "storage", "--json", ldfs[0])).stdout.utf8))
        #expect(alone.machines[0].own == 3110)
        let printed = expectSuccess(try workspace.strata(["ldf", "storage"] + ldfs)).stdout.split(separator: "\n")
        #expect(printed.count == 4 && printed[0].hasPrefix("machine") && printed[3].hasPrefix("total"), "\(printed)")
    }
}
