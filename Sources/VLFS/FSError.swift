import StrataStore
#if canImport(Glibc)
import Glibc
#endif

/// A failed filesystem operation, as the errno the kernel will see. The FUSE adapter maps every
/// error to an errno in exactly one place; anything that is not an `FSError` becomes EIO there.
public struct FSError: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    /// The current errno.
    public static var last: FSError { FSError(errno) }

    public static let notFound = FSError(ENOENT)
    public static let exists = FSError(EEXIST)
    public static let notDirectory = FSError(ENOTDIR)
    public static let isDirectory = FSError(EISDIR)
    public static let notEmpty = FSError(ENOTEMPTY)
    public static let invalid = FSError(EINVAL)
    public static let notPermitted = FSError(EPERM)
    public static let noAttribute = FSError(ENODATA)
    public static let crossDevice = FSError(EXDEV)

    public var description: String { String(cString: strerror(code)) }

    /// A descriptor from a call that returns one or -errno (`Beneath.open`).
    static func opened(_ result: Int32) throws(FSError) -> Int32 {
        guard result >= 0 else { throw FSError(-result) }
        return result
    }

    /// Runs a call that throws `SystemError` (the store's helpers), keeping its errno.
    static func mapping<T>(_ body: () throws -> T) throws(FSError) -> T {
        do {
            return try body()
        } catch let error as SystemError {
            throw FSError(error.errno)
        } catch let error as FSError {
            throw error
        } catch {
            throw FSError(EIO)
        }
    }
}

/// Runs a libc call on the private layer, retrying EINTR and throwing its errno.
@inline(__always)
@discardableResult
func check<T: BinaryInteger>(_ body: () -> T) throws(FSError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        if errno == EINTR { continue }
        throw FSError.last
    }
}
