#if canImport(Glibc)
import Glibc
#endif

/// The mounts this process sees, from `/proc/self/mounts`. Read to the end with `readAll`: the file
/// reports no size, and Foundation's `String(contentsOfFile:)` stops after its first 4 KiB, which on a
/// host with a few dozen mounts hides the newest ones.
public enum MountTable {
    public struct Mount: Sendable, Equatable {
        public let source: String
        public let mountpoint: String
        public let type: String
        /// The mount's options, each unescaped (a path in one may hold a comma).
        public let options: [String]
    }

    public static func current() -> [Mount] {
        guard let bytes = try? FileDescriptor.open("/proc/self/mounts", O_RDONLY).readAll() else { return [] }
        return bytes.split(separator: UInt8(ascii: "\n")).compactMap { line in
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count > 2 else { return nil }
            let options = fields.count > 3 ? fields[3].split(separator: UInt8(ascii: ",")).map(unescaped) : []
            return Mount(source: unescaped(fields[0]), mountpoint: unescaped(fields[1]), type: unescaped(fields[2]), options: options)
        }
    }

    /// Whether something is mounted at `path` (absolute, as the kernel reports it).
    public static func isMounted(_ path: String, type: String? = nil) -> Bool {
        current().contains { $0.mountpoint == path && (type == nil || $0.type == type) }
    }

    /// The kernel writes space, tab, newline and backslash in a field as `\ooo` octal escapes.
    static func unescaped(_ field: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var index = field.startIndex
        while index < field.endIndex {
            let digits = field[index...].dropFirst().prefix(3)
            if field[index] == UInt8(ascii: "\\"), digits.count == 3, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }) {
                out.append(digits.reduce(0) { $0 &* 8 &+ ($1 - UInt8(ascii: "0")) })
                index += 4
            } else {
                out.append(field[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
