// EVP covers SHA-256 (EVP_MD) and ed25519 (EVP_PKEY_ED25519: raw keys, EVP_DigestSign/Verify with a NULL digest).
#include <openssl/evp.h>
#include <openssl/sha.h>
