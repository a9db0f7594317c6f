import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Someone the catalog knows: the caller of a verb, an image's owner, or a member of an access list.
public struct User: Hashable, Sendable, Codable, CustomStringConvertible {
    public var uid: UInt32
    public var name: String

    public init(uid: UInt32, name: String) {
        self.uid = uid
        self.name = name
    }

    /// Stands for every user in an access list; (uid_t)-1 is never a real user.
    public static let everyone = User(uid: UInt32.max, name: "everyone")

    /// The calling user (the real uid, so a setuid wrapper cannot lend its rights).
    public static var current: User { User(uid: getuid()) }

    /// Root may do anything, as an administrator may in Mirage.
    public var isRoot: Bool { uid == 0 }

    public init(uid: UInt32) {
        self.init(uid: uid, name: User.accountName(of: uid) ?? String(uid))
    }

    /// A user given on the command line: `everyone`, an account name, or a numeric uid.
    public init(parsing text: String) throws {
        if text == "everyone" {
            self = .everyone
        } else if let uid = UInt32(text), uid != UInt32.max {
            self.init(uid: uid)
        } else if let account = getpwnam(text) {
            self.init(uid: account.pointee.pw_uid, name: text)
        } else {
            throw CatalogError("unknown user '\(text)': not an account name, a uid, nor 'everyone'")
        }
    }

    static func accountName(of uid: UInt32) -> String? {
        guard let account = getpwuid(uid) else { return nil }
        return String(cString: account.pointee.pw_name)
    }

    public var description: String { self == .everyone ? name : "\(name) (uid \(uid))" }
}

/// An error about the catalog or an image, in words that name the image, version or user.
public struct CatalogError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
