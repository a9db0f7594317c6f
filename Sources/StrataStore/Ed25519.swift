import COpenSSL

/// Ed25519 signatures (RFC 8032) through OpenSSL's EVP interface, with raw 32-byte keys and 64-byte
/// signatures. Ed25519 hashes the message itself, so EVP_DigestSign/Verify run with a NULL digest
/// over the whole message at once. Callers see only bytes; the EVP_PKEY stays inside each call.
public enum Ed25519 {
    public static let keyLength = 32
    public static let signatureLength = 64

    public struct PrivateKey: Sendable {
        /// The 32-byte seed RFC 8032 calls the private key.
        public let raw: [UInt8]

        public init(raw: [UInt8]) throws {
            guard raw.count == keyLength else { throw StoreError("an ed25519 private key is \(keyLength) bytes, not \(raw.count)") }
            self.raw = raw
        }

        /// A new key from OpenSSL's random generator.
        public static func generate() throws -> PrivateKey {
            guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw StoreError("OpenSSL has no ed25519 key generator") }
            defer { EVP_PKEY_CTX_free(context) }
            var key: OpaquePointer?
            guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &key) == 1, let key else {
                throw StoreError("OpenSSL could not generate an ed25519 key")
            }
            defer { EVP_PKEY_free(key) }
            return try PrivateKey(raw: try rawKey(key, EVP_PKEY_get_raw_private_key))
        }

        public func publicKey() throws -> PublicKey {
            try withKey { try PublicKey(raw: try rawKey($0, EVP_PKEY_get_raw_public_key)) }
        }

        public func sign(_ message: [UInt8]) throws -> [UInt8] {
            try withKey { key in
                guard let context = EVP_MD_CTX_new() else { throw StoreError("OpenSSL could not allocate a signing context") }
                defer { EVP_MD_CTX_free(context) }
                var signature = [UInt8](repeating: 0, count: signatureLength)
                var length = signatureLength
                guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1,
                      EVP_DigestSign(context, &signature, &length, message, message.count) == 1, length == signatureLength
                else { throw StoreError("OpenSSL could not sign with an ed25519 key") }
                return signature
            }
        }

        private func withKey<T>(_ body: (OpaquePointer) throws -> T) throws -> T {
            guard let key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, raw, raw.count) else {
                throw StoreError("OpenSSL refuses the ed25519 private key")
            }
            defer { EVP_PKEY_free(key) }
            return try body(key)
        }
    }

    public struct PublicKey: Sendable, Equatable {
        public let raw: [UInt8]

        public init(raw: [UInt8]) throws {
            guard raw.count == keyLength else { throw StoreError("an ed25519 public key is \(keyLength) bytes, not \(raw.count)") }
            self.raw = raw
        }

        /// Whether `signature` is this key's over `message`; a malformed key or signature is simply false.
        public func verifies(_ signature: [UInt8], of message: [UInt8]) -> Bool {
            guard signature.count == signatureLength,
                  let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, raw.count) else { return false }
            defer { EVP_PKEY_free(key) }
            guard let context = EVP_MD_CTX_new() else { return false }
            defer { EVP_MD_CTX_free(context) }
            return EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1
                && EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
        }
    }

    /// A raw key out of an EVP_PKEY, by `EVP_PKEY_get_raw_private_key` or `…_public_key`.
    private static func rawKey(_ key: OpaquePointer,
                               _ get: (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>?) -> Int32) throws -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: keyLength)
        var length = keyLength
        guard get(key, &raw, &length) == 1, length == keyLength else { throw StoreError("OpenSSL could not export an ed25519 key") }
        return raw
    }
}
