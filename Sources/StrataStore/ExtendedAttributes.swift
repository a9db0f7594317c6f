import CLinux
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes of a file, never following a final symlink.
public enum ExtendedAttributes {
    /// The file whose attributes are meant: a path (a final symlink is not followed); an open
    /// descriptor, O_PATH ones included, reached through `/proc/self/fd`, whose magic link leads to
    /// exactly that file whatever its name has become since; or one name in a directory held open.
    public struct Target: Sendable {
        fileprivate let place: Place
        /// Names the file in errors.
        let path: String

        public static func path(_ path: String) -> Target { Target(place: .path(path), path: path) }
        public static func descriptor(_ fd: Int32) -> Target { Target(place: .magicLink("/proc/self/fd/\(fd)"), path: "/proc/self/fd/\(fd)") }
        /// `name` in `directory`, named `path` in errors.
        public static func entry(_ name: String, in directory: Int32, path: String) -> Target {
            Target(place: .entry(directory, name), path: path)
        }

        /// Linux before 6.13 has no *xattrat calls: there a name in a directory is reached through an
        /// O_PATH descriptor of it, by its magic link, which leads to the file itself (a symlink
        /// included) and no further.
        fileprivate func reaching<T>(_ body: (Place) throws -> T) throws -> T {
            guard case .entry(let directory, let name) = place else { return try body(place) }
            if !Place.atCallsMissing.load(ordering: .relaxed) {
                do {
                    return try body(place)
                } catch let error as SystemError where error.errno == ENOSYS {
                    Place.atCallsMissing.store(true, ordering: .relaxed)
                }
            }
            let fd = try sys("open", path) { openat(directory, name, Beneath.pathOnly | O_NOFOLLOW | O_CLOEXEC) }
            defer { close(fd) }
            return try body(.magicLink("/proc/self/fd/\(fd)"))
        }
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
        try target.reaching { place in
            let size = place.listNames(nil, 0)
            if size < 0 {
                if errno == ENOTSUP || errno == ENODATA { return [] }
                throw SystemError("listxattr", target.path)
            }
            if size == 0 { return [] }
            var names = [CChar](repeating: 0, count: size)
            let length = try sys("listxattr", target.path) { place.listNames(&names, names.count) }
            return names[..<length].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
    }

    /// The value of one attribute; nil when the file has none of that name.
    public static func get(_ target: Target, _ name: String) throws -> [UInt8]? {
        try target.reaching { place in
            let size = place.get(name, nil, 0)
            if size < 0 {
                if errno == ENODATA { return nil }
                throw SystemError("getxattr \(name)", target.path)
            }
            var value = [UInt8](repeating: 0, count: size)
            let length = try sys("getxattr \(name)", target.path) { place.get(name, &value, value.count) }
            return Array(value[..<length])
        }
    }

    public static func set(_ path: String, _ attribute: ExtendedAttribute) throws { try set(.path(path), attribute) }

    public static func set(_ target: Target, _ attribute: ExtendedAttribute, flags: Int32 = 0) throws {
        try target.reaching { place in
            _ = try sys("setxattr \(attribute.name)", target.path) {
                attribute.value.withUnsafeBytes { place.set(attribute.name, $0.baseAddress, $0.count, flags) }
            }
        }
    }

    public static func remove(_ target: Target, _ name: String) throws {
        try target.reaching { place in
            _ = try sys("removexattr \(name)", target.path) { place.remove(name) }
        }
    }
}

/// Where the calls go: l*xattr on a path, the following calls on a magic link, *xattrat on a name.
private enum Place: Sendable {
    case path(String)
    case magicLink(String)
    case entry(Int32, String)

    /// Set once a *xattrat call says ENOSYS.
    static let atCallsMissing = Atomic<Bool>(false)

    func listNames(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        switch self {
        case .path(let path): llistxattr(path, buffer, size)
        case .magicLink(let link): listxattr(link, buffer, size)
        case .entry(let directory, let name): strata_listxattrat(directory, name, buffer, size)
        }
    }

    func get(_ attribute: String, _ buffer: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        switch self {
        case .path(let path): lgetxattr(path, attribute, buffer, size)
        case .magicLink(let link): getxattr(link, attribute, buffer, size)
        case .entry(let directory, let name): strata_getxattrat(directory, name, attribute, buffer, size)
        }
    }

    func set(_ attribute: String, _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) -> Int32 {
        switch self {
        case .path(let path): lsetxattr(path, attribute, value, size, flags)
        case .magicLink(let link): setxattr(link, attribute, value, size, flags)
        case .entry(let directory, let name): strata_setxattrat(directory, name, attribute, value, size, flags)
        }
    }

    func remove(_ attribute: String) -> Int32 {
        switch self {
        case .path(let path): lremovexattr(path, attribute)
        case .magicLink(let link): removexattr(link, attribute)
        case .entry(let directory, let name): strata_removexattrat(directory, name, attribute)
        }
    }
}
