import ArgumentParser
import Foundation
import Mirage

extension ImageCommand {
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark an image version deleted (its catalog row stays; gc frees its objects).",
            discussion: "Only the image's owner or root may delete. The default version moves to the newest active version left.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image.") var image: String
        @Flag(help: "Delete every version of the named image.") var allVersions = false

        func run() throws {
            for version in try options.catalog().delete(try ImageReference(parsing: image), allVersions: allVersions) {
                print("deleted \(version.reference) \(version.digest)")
            }
        }
    }

    struct Tag: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Name an image version with a tag, so NAME@TAG refers to it (a tag moves if it exists).")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image.") var image: String
        @Argument(help: "The tag (letters, digits, '-', '_', '.'; not only digits).") var tag: String

        func run() throws {
            let version = try options.catalog().tag(try ImageReference(parsing: image), as: tag)
            print("\(version.name)@\(tag) = \(version.reference) \(version.digest)")
        }
    }

    struct Default: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an image version the default one, which NAME alone refers to.")
        @OptionGroup var options: HomeOptions
        @Argument(help: "The image version.") var image: String

        func run() throws {
            let version = try options.catalog().setDefault(try ImageReference(parsing: image))
            print("\(version.name) = \(version.reference) \(version.digest)")
        }
    }

    /// Options shared by grant and revoke.
    struct AccessOptions: ParsableArguments {
        @Argument(help: "The image name.") var name: String
        @Argument(help: "Account names, uids, or 'everyone'.") var users: [String]
        @Flag(help: "Checking out (and mounting, diffing, scanning).") var checkout = false
        @Flag(help: "Checking in new versions (and tagging).") var checkin = false

        func validate() throws {
            if !checkout && !checkin { throw ValidationError("say which permission: --checkout, --checkin, or both") }
            if users.isEmpty { throw ValidationError("name at least one user") }
        }

        var permissions: [Permission] { (checkout ? [.checkout] : []) + (checkin ? [.checkin] : []) }

        func apply(_ options: HomeOptions, granted: Bool) throws {
            let users = try self.users.map { try User(parsing: $0) }
            try options.catalog().setAccess(name, users: users, permissions: permissions, granted: granted)
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Allow users to check out or check in a named image (owner or root only).")
        @OptionGroup var options: HomeOptions
        @OptionGroup var access: AccessOptions

        func run() throws { try access.apply(options, granted: true) }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take back what grant gave (owner or root only).")
        @OptionGroup var options: HomeOptions
        @OptionGroup var access: AccessOptions

        func run() throws { try access.apply(options, granted: false) }
    }
}
