// Umbrella header for OpenSSL: TLS contexts, SHA-256 for key hashes, the session-id CSPRNG.
#ifndef SWITCHYARD_COPENSSL_SHIM_H
#define SWITCHYARD_COPENSSL_SHIM_H
// No feature macros here: they must match Swift's Glibc module (see CLibEvent/shim.h).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

// OpenSSL 3 builds SSL_OP_* from a macro Swift cannot import (libevent-notes B4).
static const uint64_t sy_SSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;
static const uint64_t sy_SSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const uint64_t sy_SSL_OP_IGNORE_UNEXPECTED_EOF = SSL_OP_IGNORE_UNEXPECTED_EOF;
static const uint64_t sy_SSL_OP_CIPHER_SERVER_PREFERENCE = SSL_OP_CIPHER_SERVER_PREFERENCE;
// Function-like macros (B3).
static inline int sy_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline long sy_SSL_CTX_set_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_mode(ctx, m); }
static inline int sy_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline int sy_TLS1_3_VERSION(void) { return TLS1_3_VERSION; }
#endif
