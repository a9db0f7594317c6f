import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call, carrying the call and the path it acted on, as `open: /path: No such file or directory`.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let path: String
    public let errno: Int32

    public init(_ call: String, _ path: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(call): \(path): \(String(cString: strerror(errno)))"
    }
}

/// An error about stored data or user input, stated in words that name what is wrong.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a system call, retrying on EINTR, and throws `SystemError` on failure.
@inline(__always)
public func sys<T: BinaryInteger>(_ call: String, _ path: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call, path(), errno: code)
    }
}
