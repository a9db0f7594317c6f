import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes of a path, never following a final symlink.
public enum ExtendedAttributes {
    public static func list(_ path: String) throws -> [ExtendedAttribute] {
        let size = llistxattr(path, nil, 0)
        if size < 0 {
            if errno == ENOTSUP || errno == ENODATA { return [] }
            throw SystemError("llistxattr", path)
        }
        if size == 0 { return [] }
        var names = [CChar](repeating: 0, count: size)
        let length = try sys("llistxattr", path) { llistxattr(path, &names, names.count) }
        var result: [ExtendedAttribute] = []
        var start = 0
        while start < length {
            let end = names[start..<length].firstIndex(of: 0) ?? length
            let name = String(decoding: names[start..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            start = end + 1
            if let value = try get(path, name) { result.append(ExtendedAttribute(name: name, value: value)) }
        }
        return result.sorted { $0.name < $1.name }
    }

    static func get(_ path: String, _ name: String) throws -> [UInt8]? {
        let size = lgetxattr(path, name, nil, 0)
        if size < 0 {
            if errno == ENODATA { return nil }
            throw SystemError("lgetxattr \(name)", path)
        }
        var value = [UInt8](repeating: 0, count: size)
        let length = try sys("lgetxattr \(name)", path) { lgetxattr(path, name, &value, value.count) }
        return Array(value[..<length])
    }

    public static func set(_ path: String, _ attribute: ExtendedAttribute) throws {
        _ = try sys("lsetxattr \(attribute.name)", path) {
            attribute.value.withUnsafeBytes { lsetxattr(path, attribute.name, $0.baseAddress, $0.count, 0) }
        }
    }
}
