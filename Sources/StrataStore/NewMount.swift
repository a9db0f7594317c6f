import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A filesystem made with the new mount API (`strata_new_mount`), not yet attached anywhere: options
/// are set in order, a key may repeat (overlayfs's `lowerdir+`), and a nil value sets a flag.
public enum NewMount {
    /// The detached mount of a new `type` filesystem, as a descriptor; `what` names it in errors.
    public static func make(_ type: String, options: [(key: String, value: String?)], attributes: Int32, what: String) throws -> FileDescriptor {
        let keys = options.map { strdup($0.key) }
        let values = options.map { $0.value.map { strdup($0) } ?? nil }
        defer { (keys + values).forEach { free($0) } }
        let mount = try keys.map { UnsafePointer($0) }.withUnsafeBufferPointer { keys in
            try values.map { $0.map { UnsafePointer($0) } }.withUnsafeBufferPointer { values in
                try sys("mount \(type)", what) { strata_new_mount(type, keys.baseAddress, values.baseAddress, Int32(keys.count), UInt32(attributes)) }
            }
        }
        return FileDescriptor(raw: mount, path: what)
    }
}
