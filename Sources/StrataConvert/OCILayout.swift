import Foundation
import StrataStore

/// The documents of the OCI image layout and image specifications (v1.1) that Strata writes and reads:
/// `oci-layout`, `index.json`, image manifests and image configurations, and the descriptors that
/// name blobs by digest. Encoded with sorted keys and no spacing, so the same image gives the same bytes.
public enum OCI {
    public static let layoutVersion = "1.0.0"
    public static let indexMediaType = "application/vnd.oci.image.index.v1+json"
    public static let manifestMediaType = "application/vnd.oci.image.manifest.v1+json"
    public static let configMediaType = "application/vnd.oci.image.config.v1+json"
    public static let layerMediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
    /// Layer media types an import accepts (libarchive detects the compression itself).
    public static let readableLayerMediaTypes: Set<String> = [
        "application/vnd.oci.image.layer.v1.tar", layerMediaType, "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ]
    public static let readableManifestMediaTypes: Set<String> = [manifestMediaType, "application/vnd.docker.distribution.manifest.v2+json"]

    /// Annotations on each layer descriptor naming the Strata layer it was made from; an import takes
    /// them as the layer's name and version.
    public static let layerNameAnnotation = "org.strata.layer.name"
    public static let layerVersionAnnotation = "org.strata.layer.version"
    /// `software`, `config`, `generated` (the dpkg database a VLFS shows) or `private`.
    public static let layerKindAnnotation = "org.strata.layer.kind"
    /// The tag of an image in its layout's index (the part after the colon of `oci:DIR:TAG`).
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"

    /// overlayfs's marks, as OCI layers spell them: `.wh.NAME` deletes NAME from the layers below,
    /// `.wh..wh..opq` in a directory hides every lower layer's entries in it.
    public static let whiteoutPrefix = ".wh."
    public static let opaqueMarker = ".wh..wh..opq"

    public struct Descriptor: Codable, Equatable, Sendable {
        public var mediaType: String
        public var digest: String
        public var size: Int64
        public var annotations: [String: String]?
        public var platform: Platform?

        public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
            self.mediaType = mediaType
            self.digest = digest.description
            self.size = size
            self.annotations = annotations
            self.platform = platform
        }
    }

    public struct Platform: Codable, Equatable, Sendable {
        public var architecture: String
        public var os: String
    }

    public struct Index: Codable, Sendable {
        public var schemaVersion = 2
        public var mediaType: String? = OCI.indexMediaType
        public var manifests: [Descriptor]
    }

    public struct Manifest: Codable, Sendable {
        public var schemaVersion = 2
        public var mediaType: String? = OCI.manifestMediaType
        public var config: Descriptor
        public var layers: [Descriptor]
        public var annotations: [String: String]?
    }

    /// The image configuration: what a runtime needs besides the layers, and the digests of their
    /// uncompressed tars (`diff_ids`), which tie the configuration to the layers' contents.
    public struct ImageConfig: Codable, Sendable {
        public struct RootFS: Codable, Sendable {
            public var type = "layers"
            public var diff_ids: [String]
        }

        public struct History: Codable, Sendable {
            public var created_by: String
        }

        public var architecture: String
        public var os = "linux"
        public var rootfs: RootFS
        public var history: [History]?
    }

    /// `{"imageLayoutVersion": "1.0.0"}`.
    public struct LayoutFile: Codable, Sendable {
        public var imageLayoutVersion: String
    }

    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// Decodes a document read from an image, naming it in the error.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw StoreError("\(what): not a valid OCI document: \(error)")
        }
    }

    /// A descriptor's digest, which must be a SHA-256 digest (the only algorithm Strata's store speaks).
    public static func digest(of descriptor: Descriptor, in what: String) throws -> Digest {
        guard let digest = Digest(descriptor.digest) else { throw StoreError("\(what): digest '\(descriptor.digest)' is not sha256:<64 hex digits>") }
        return digest
    }
}
