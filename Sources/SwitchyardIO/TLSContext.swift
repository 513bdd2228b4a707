// An immutable server SSL_CTX built from files; replaced (not mutated) on reload.

internal import CLibEvent
internal import COpenSSL
#if canImport(Glibc)
    internal import Glibc
#endif

package struct TLSError: Error, CustomStringConvertible {
    package var what: String
    package var description: String { what }
}

/// What a TLS listener needs; paths are absolute (the config loader resolves them).
package struct TLSSettings: Equatable {
    package var cert: String
    package var key: String
    package var minVersion13: Bool
    package var ciphers: String?
    package var clientCA: String?
    package init(cert: String, key: String, minVersion13: Bool, ciphers: String?, clientCA: String?) {
        self.cert = cert
        self.key = key
        self.minVersion13 = minVersion13
        self.ciphers = ciphers
        self.clientCA = clientCA
    }
}

package final class TLSContext {
    let ctx: OpaquePointer
    package let settings: TLSSettings

    /// Loads certificate chain, key and options. Errors name the file and OpenSSL's reason.
    package init(_ s: TLSSettings) throws(TLSError) {
        guard let c = SSL_CTX_new(TLS_server_method()) else { throw TLSError(what: "SSL_CTX_new failed") }
        ctx = c
        settings = s
        let min = s.minVersion13 ? sy_TLS1_3_VERSION() : sy_TLS1_2_VERSION()
        _ = sy_SSL_CTX_set_min_proto_version(c, min)
        SSL_CTX_set_options(
            c, sy_SSL_OP_NO_COMPRESSION | sy_SSL_OP_NO_RENEGOTIATION | sy_SSL_OP_IGNORE_UNEXPECTED_EOF | sy_SSL_OP_CIPHER_SERVER_PREFERENCE)
        // Idle connections give their read/write buffers back (memory per idle TLS session).
        _ = sy_SSL_CTX_set_mode(c, Int(SSL_MODE_RELEASE_BUFFERS))
        do throws(TLSError) {
            try TLSContext.check(SSL_CTX_use_certificate_chain_file(c, s.cert), "cannot load certificate chain \(s.cert)")
            try TLSContext.check(SSL_CTX_use_PrivateKey_file(c, s.key, SSL_FILETYPE_PEM), "cannot load private key \(s.key)")
            try TLSContext.check(SSL_CTX_check_private_key(c), "private key \(s.key) does not match certificate \(s.cert)")
            if let ciphers = s.ciphers {
                // TLS 1.2 suites and TLS 1.3 suites are configured separately; accept either kind of list.
                let ok12 = SSL_CTX_set_cipher_list(c, ciphers) == 1
                ERR_clear_error()
                let ok13 = SSL_CTX_set_ciphersuites(c, ciphers) == 1
                ERR_clear_error()
                if !ok12 && !ok13 { throw TLSError(what: "no usable cipher in \"\(ciphers)\"") }
            }
            if let ca = s.clientCA {
                try TLSContext.check(SSL_CTX_load_verify_locations(c, ca, nil), "cannot load client CA \(ca)")
                SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
                if let names = SSL_load_client_CA_file(ca) { SSL_CTX_set_client_CA_list(c, names) }
            }
        } catch {
            // No SSL_CTX_free here: the object is fully initialized, so a throwing init still runs deinit,
            // which frees it (freeing here as well was a double free).
            throw error
        }
    }

    deinit { SSL_CTX_free(ctx) }

    static func check(_ rc: Int32, _ what: String) throws(TLSError) {
        guard rc == 1 else {
            let code = ERR_get_error()
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            ERR_clear_error()
            throw TLSError(what: "\(what): \(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
    }

    /// A new accepting TLS bufferevent on an accepted socket (closed with it).
    func makeBufferevent(base: OpaquePointer, fd: Int32) -> OpaquePointer? {
        guard let ssl = SSL_new(ctx) else { return nil }
        return bufferevent_openssl_socket_new(
            base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, Int32(BEV_OPT_CLOSE_ON_FREE.rawValue))
    }
}

/// SHA-256 of a secret, as lowercase hex (the form keys are configured in).
package enum Digest {
    package static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        bytes.withUnsafeBytes { b in
            _ = EVP_Digest(b.baseAddress, b.count, &out, &len, EVP_sha256(), nil)
        }
        return out
    }

    package static func sha256Hex(_ bytes: [UInt8]) -> String {
        let out = sha256(bytes)
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        for b in out {
            hex.append(digits[Int(b >> 4)])
            hex.append(digits[Int(b & 15)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
