import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes of a file, never following a final symlink.
public enum ExtendedAttributes {
    /// The file whose attributes are meant: a path (a final symlink is not followed), or an open
    /// descriptor, O_PATH ones included, reached through `/proc/self/fd`, whose magic link leads to
    /// exactly that file whatever its name has become since.
    public struct Target: Sendable {
        let path: String
        let followsMagicLink: Bool

        public static func path(_ path: String) -> Target { Target(path: path, followsMagicLink: false) }
        public static func descriptor(_ fd: Int32) -> Target { Target(path: "/proc/self/fd/\(fd)", followsMagicLink: true) }
    }

    public static func list(_ path: String) throws -> [ExtendedAttribute] { try list(.path(path)) }

    public static func list(_ target: Target) throws -> [ExtendedAttribute] {
        var result: [ExtendedAttribute] = []
        for name in try names(target) {
            if let value = try get(target, name) { result.append(ExtendedAttribute(name: name, value: value)) }
        }
        return result.sorted { $0.name < $1.name }
    }

    public static func names(_ target: Target) throws -> [String] {
        let call = { (buffer: UnsafeMutablePointer<CChar>?, size: Int) in
            target.followsMagicLink ? listxattr(target.path, buffer, size) : llistxattr(target.path, buffer, size)
        }
        let size = call(nil, 0)
        if size < 0 {
            if errno == ENOTSUP || errno == ENODATA { return [] }
            throw SystemError("listxattr", target.path)
        }
        if size == 0 { return [] }
        var names = [CChar](repeating: 0, count: size)
        let length = try sys("listxattr", target.path) { call(&names, names.count) }
        return names[..<length].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// The value of one attribute; nil when the file has none of that name.
    public static func get(_ target: Target, _ name: String) throws -> [UInt8]? {
        let call = { (buffer: UnsafeMutableRawPointer?, size: Int) in
            target.followsMagicLink ? getxattr(target.path, name, buffer, size) : lgetxattr(target.path, name, buffer, size)
        }
        let size = call(nil, 0)
        if size < 0 {
            if errno == ENODATA { return nil }
            throw SystemError("getxattr \(name)", target.path)
        }
        var value = [UInt8](repeating: 0, count: size)
        let length = try sys("getxattr \(name)", target.path) { call(&value, value.count) }
        return Array(value[..<length])
    }

    public static func set(_ path: String, _ attribute: ExtendedAttribute) throws { try set(.path(path), attribute) }

    public static func set(_ target: Target, _ attribute: ExtendedAttribute, flags: Int32 = 0) throws {
        _ = try sys("setxattr \(attribute.name)", target.path) {
            attribute.value.withUnsafeBytes {
                target.followsMagicLink ? setxattr(target.path, attribute.name, $0.baseAddress, $0.count, flags)
                    : lsetxattr(target.path, attribute.name, $0.baseAddress, $0.count, flags)
            }
        }
    }

    public static func remove(_ target: Target, _ name: String) throws {
        _ = try sys("removexattr \(name)", target.path) {
            target.followsMagicLink ? removexattr(target.path, name) : lremovexattr(target.path, name)
        }
    }
}
