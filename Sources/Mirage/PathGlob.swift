#if canImport(Glibc)
import Glibc
#endif

/// A path pattern for search: components matched one by one with shell wildcards (`*`, `?`, `[…]`,
/// never crossing a '/'), where `**` stands for any number of components. A pattern that does not
/// start with '/' may match at any depth: `libssl.so*` and `bin/openssl` find those names anywhere.
public struct PathGlob: Sendable {
    let components: [String]

    public init(_ pattern: String) {
        let parts = pattern.split(separator: "/").map(String.init)
        components = pattern.hasPrefix("/") ? parts : ["**"] + parts
    }

    /// The pattern for the last component, which the index can filter on; nil when anything goes.
    var namePattern: String? {
        guard let last = components.last, last != "**" else { return nil }
        return last
    }

    /// Whether an absolute path (`/usr/bin/openssl`) matches.
    public func matches(_ path: String) -> Bool {
        matches(components[...], path.split(separator: "/").map(String.init)[...])
    }

    private func matches(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let first = pattern.first else { return path.isEmpty }
        if first == "**" {
            return (0...path.count).contains { matches(pattern.dropFirst(), path.dropFirst($0)) }
        }
        guard let head = path.first, fnmatch(first, head, FNM_PERIOD) == 0 else { return false }
        return matches(pattern.dropFirst(), path.dropFirst())
    }
}
