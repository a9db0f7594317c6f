import ArgumentParser
import Foundation
import StrataLayers
import StrataStore

extension RepoCommand {
    struct Key: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make keys that sign repository indexes.", subcommands: [Generate.self])

        struct Generate: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Write a new ed25519 signing key at PATH (mode 0600) and its public key at PATH.pub.",
                discussion: "Refuses to replace an existing key. Prints the public key line, which homes trust with 'strata repo add NAME URL --key'.")
            @Argument(help: "Where the private key goes.") var path: String

            func run() throws {
                print(SigningKey.line(try SigningKey.generate(at: path)))
            }
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a local repository's index, writing index.sig beside index.sqlite.",
            discussion: """
                Sign again after every change to the repository (a layer imported or withdrawn, a \
                reindex): they rewrite index.sqlite, and a home that trusts the key refuses an index \
                that is not the one signed — publish from a copy, or sign right after changing. Each \
                signature's serial is one more than the previous index.sig's, and homes refuse a serial \
                older than the one they accepted; they also refuse an expired signature, so sign again \
                before --expires runs out even when nothing changed.
                """)
        @OptionGroup var options: HomeOptions
        @Argument(help: "Repository name or path (a local repository).") var repository: String
        @Option(help: "The private key file ('strata repo key generate').") var key: String
        @Option(help: "Days the signature is valid (0: expired at once).") var expires = 30
        @Option(help: "The repository's name in the signature (default: its name in the home, else its directory's name).")
        var name: String?

        func run() throws {
            guard expires >= 0 else { throw ValidationError("--expires is a number of days, 0 or more") }
            let signing = try SigningKey.readPrivate(key)
            let repo = try options.repository(repository)
            if let origin = repo.origin {
                throw LayerError("'\(repository)' is a mirror of \(origin); sign the repository there")
            }
            let signatureFile = repo.path + "/" + IndexSignature.fileName
            // One signer at a time: two reading the same previous serial would sign two indexes alike.
            let signed = try FileLock.withExclusive(signatureFile + ".lock") {
                let previous = FileManager.default.fileExists(atPath: signatureFile)
                    ? try IndexSignature(parsing: try FileDescriptor.open(signatureFile, O_RDONLY).readAll(limit: 1 << 20), file: signatureFile).serial
                    : 0
                let named = try options.strataHome.repositories().contains { $0.name == repository }
                let signed = try IndexSignature.sign(
                    indexPath: repo.path + "/index.sqlite", repository: name ?? (named ? repository : URL(fileURLWithPath: repo.path).standardizedFileURL.lastPathComponent),
                    serial: previous + 1, expires: Date(timeIntervalSinceNow: Double(expires) * 86400), with: signing)
                try AtomicFile.write(signed.text, to: signatureFile)
                return signed
            }
            print("\(signed.repository)\tserial \(signed.serial)\t\(signed.index)\texpires \(IndexSignature.format(signed.expires))")
        }
    }
}
