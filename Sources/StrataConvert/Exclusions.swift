import Foundation
import Mirage
import StrataLayers

/// The paths of a machine that a rootfs import leaves out of its configuration layer and its
/// verification: state the running system makes (kernel filesystems, caches, logs), what identifies one
/// machine (its machine-id, SSH host keys), and the dpkg database, which a VLFS generates from its
/// layers. A pattern (`PathGlob`, absolute: `*` within a name, `**` any number of names) leaves out the
/// paths it matches and everything beneath them. `--exclusions FILE` replaces the list (one pattern a
/// line, `#` comments), `--exclude PATTERN` adds to it.
public struct Exclusions: Sendable {
    public static let defaults = [
        "/dev/*", "/proc/*", "/sys/*", "/run/*", "/tmp/*", "/var/tmp/*", "/lost+found",
        "/var/cache/apt/*", "/var/lib/apt/lists/*", "/var/cache/debconf/*-old", "/var/cache/ldconfig/aux-cache",
        "/var/log/*", "/var/backups/*",
        "/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/ssh/ssh_host_*", "/var/lib/systemd/random-seed",
        "/etc/.pwd.lock", "/etc/*-",
        "/var/lib/dpkg",
    ]

    public let patterns: [String]
    private let globs: [PathGlob]

    public init(_ patterns: [String]) throws {
        for pattern in patterns where !pattern.hasPrefix("/") {
            throw LayerError("exclusion '\(pattern)': patterns are absolute paths (start with '/')")
        }
        self.patterns = patterns
        globs = patterns.map(PathGlob.init)
    }

    /// The patterns of a file: one a line, blank lines and `#` comments skipped; errors name file and line.
    public init(file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var patterns: [String] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let pattern = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingCharacters(in: .whitespaces)
            if pattern.isEmpty { continue }
            guard pattern.hasPrefix("/") else { throw ParseError(file: file, line: number + 1, message: "'\(pattern)': expected an absolute path pattern") }
            patterns.append(pattern)
        }
        try self.init(patterns)
    }

    /// Whether `path` (relative to the root, no leading slash) or a directory above it is left out.
    public func excludes(_ path: String) -> Bool {
        var prefix = Substring(path)
        while !prefix.isEmpty {
            let absolute = "/" + prefix
            if globs.contains(where: { $0.matches(absolute) }) { return true }
            guard let slash = prefix.lastIndex(of: "/") else { return false }
            prefix = prefix[..<slash]
        }
        return false
    }
}
