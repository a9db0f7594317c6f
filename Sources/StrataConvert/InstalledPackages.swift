import StrataLayers

/// The packages a Debian machine has installed, from its dpkg database (`var/lib/dpkg/status`): each
/// paragraph whose `Status` is `install ok installed`, with its control fields as metadata. Packages
/// dpkg holds in any other state (half-configured, config-files only, …) are not part of the system
/// as it runs and are left out.
public struct InstalledPackage: Sendable {
    public var metadata: LayerMetadata
    /// The whole status paragraph, for a package rebuilt from the machine's files.
    public var paragraph: [(name: String, value: String)]
    public var name: String { metadata.name }
    public var version: String { metadata.version.description }
}

public enum InstalledPackages {
    /// The status file's size limit: a large desktop system's is a few MiB.
    public static let statusLimit = 64 << 20
    public static let statusPath = "var/lib/dpkg/status"

    public static func parse(_ text: String, file: String) throws -> [InstalledPackage] {
        var packages: [InstalledPackage] = []
        var seen: Set<String> = []
        for stanza in try ControlFile.parse(text, file: file) {
            guard let status = stanza["Status"], status.split(separator: " ").last == "installed" else { continue }
            let fields = stanza.fields.map { (name: $0.name, value: $0.value) }
            let metadata = try LayerMetadata(parsing: ControlFile.paragraph(fields), file: "\(file):\(stanza.line)")
            // One architecture per name: a foreign-architecture copy of a package is not a layer of its own.
            guard seen.insert(metadata.name).inserted else {
                throw LayerError("\(file):\(stanza.line): \(metadata.name) is installed twice (a second architecture); not supported")
            }
            packages.append(InstalledPackage(metadata: metadata, paragraph: fields))
        }
        return packages
    }
}
