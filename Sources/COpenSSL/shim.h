// Umbrella header for OpenSSL (used now for the session-id CSPRNG; TLS comes with issue 5).
#ifndef SWITCHYARD_COPENSSL_SHIM_H
#define SWITCHYARD_COPENSSL_SHIM_H
// No feature macros here: they must match Swift's Glibc module (see CLibEvent/shim.h).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#endif
